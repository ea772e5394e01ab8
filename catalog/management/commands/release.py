"""`manage.py release build|list|import|export|prune`: releases of the station software."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from catalog import release as rel
from catalog import releases
from catalog.entries import EntryError, priority_clean
from catalog.services import CatalogError


def _expiry(options: dict) -> dt.datetime:
    if options.get("expires"):
        try:
            return rel.parse_time(options["expires"], "--expires")
        except rel.ReleaseError as exc:
            raise CommandError(f"--expires: {exc.detail}") from exc
    return timezone.now() + dt.timedelta(days=options["valid_days"])


class Command(BaseCommand):
    help = ("Releases of the station software, published into the catalog so they replicate "
            "and every station can serve them (/simple/, /get/). Subcommands: build, list, "
            "import, export, prune; `release SUBCOMMAND --help` for each.")

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="SUBCOMMAND")
        build = sub.add_parser(
            "build", help="Collect wheels, sign a manifest and publish the release.",
            description="Collect wheels for Linux x86_64 and aarch64, macOS arm64 and Windows "
                        "amd64, CPython 3.11 and 3.12 (pip download, which needs the internet) "
                        "or take them from --wheels DIR; build the meshsite wheel from this "
                        "checkout (pip wheel --no-deps) unless DIR has one; sign the manifest "
                        "with the station key and publish everything. The station must be "
                        "claimed.")
        build.add_argument("--wheels", type=Path, help="Folder of wheels to use instead of "
                           "downloading (a release carried offline).")
        build.add_argument("--source", type=Path, default=Path(settings.BASE_DIR),
                           help="Source checkout to build the meshsite wheel from (default: "
                                "this one).")
        build.add_argument("--valid-days", type=int, default=90,
                           help="Days until the release expires (default 90).")
        build.add_argument("--expires", help="Exact expiry, UTC (2027-03-01T00:00:00Z); "
                                             "overrides --valid-days.")
        build.add_argument("--priority", default="2", help="Catalog priority of the release "
                           "(1 essential .. 4 personal; default 2 popular).")
        build.add_argument("--platform", action="append", choices=list(rel.TARGETS),
                           help="Only this target (repeatable; default: all four).")
        build.add_argument("--python", action="append", choices=rel.PYTHONS,
                           help="Only this CPython (repeatable; default: cp311 and cp312).")
        sub.add_parser("list", help="The releases this station knows, and which it serves.")
        imp = sub.add_parser("import", help="Publish a release from a folder (USB stick).",
                             description="FOLDER holds manifest.json (the signed release "
                                         "document) and every wheel it lists, as `release "
                                         "export` writes them. Signature, credential and "
                                         "every hash are checked first.")
        imp.add_argument("folder", type=Path)
        imp.add_argument("--priority", default="2")
        exp = sub.add_parser("export", help="Write the served release into a folder.")
        exp.add_argument("folder", type=Path)
        prune = sub.add_parser("prune", help="Delete this station's older releases.")
        prune.add_argument("--keep", type=int, default=2,
                           help="Newest own releases to keep (default 2).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, "_" + options["action"])(options)
        except CatalogError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc
        except EntryError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc

    def _progress(self, text: str) -> None:
        self.stderr.write(text)
        self.stderr.flush()

    def _build(self, options: dict) -> None:
        if options["valid_days"] < 1:
            raise CommandError("--valid-days must be at least 1")
        started = timezone.now()
        release = releases.release_build(
            wheels_dir=options["wheels"], source=options["source"], expires=_expiry(options),
            priority=priority_clean(options["priority"]), targets=options["platform"],
            pythons=options["python"], progress=self._progress)
        manifest = release.manifest
        total = sum(item["size"] for item in manifest["files"])
        seconds = (timezone.now() - started).total_seconds()
        self.stdout.write(self.style.SUCCESS(
            f"release {manifest['version']} counter {manifest['counter']}: "
            f"{len(manifest['files'])} files, {total:,} bytes, expires {manifest['expires']} "
            f"({seconds:.1f} s)"))
        for item in manifest["missing"]:
            self.stdout.write(f"  no {item['project']} wheel for {item['platform']} "
                              f"{item['python']}: install {item['instead']}")

    def _list(self, options: dict) -> None:
        states = releases.releases_known()
        if not states:
            self.stdout.write("no releases known (manage.py release build)")
            return
        current = releases.release_current()
        for state in states:
            release = state.release
            mark = "*" if current is not None and state.entry.pk == current.entry.pk else " "
            if release is None:
                self.stdout.write(f"{mark} {state.entry.origin_callsign}/{state.entry.path}: "
                                  f"{state.problem}")
                continue
            manifest = release.manifest
            total = sum(item["size"] for item in manifest["files"])
            self.stdout.write(
                f"{mark} {manifest['version']:<12} counter {manifest['counter']:<5} "
                f"by {manifest['station']['callsign']:<10} {len(manifest['files']):>4} files "
                f"{total:>14,} bytes  expires {manifest['expires']}"
                + (f"  ({state.problem})" if state.problem else ""))

    def _import(self, options: dict) -> None:
        release = releases.release_import(folder=options["folder"],
                                          priority=priority_clean(options["priority"]),
                                          progress=self._progress)
        self.stdout.write(self.style.SUCCESS(
            f"imported release {release.manifest['version']} counter "
            f"{release.manifest['counter']} by {release.manifest['station']['callsign']}"))

    def _export(self, options: dict) -> None:
        current = releases.release_current()
        if current is None:
            raise CommandError("this station serves no release to export")
        count = releases.release_export(release=current, folder=options["folder"])
        self.stdout.write(self.style.SUCCESS(f"wrote manifest.json and {count} files to "
                                             f"{options['folder']}"))

    def _prune(self, options: dict) -> None:
        if options["keep"] < 1:
            raise CommandError("--keep must be at least 1")
        deleted = releases.release_prune(keep=options["keep"])
        self.stdout.write(f"deleted {len(deleted)} paths")
        for path in deleted:
            self.stdout.write(f"  {path}")
