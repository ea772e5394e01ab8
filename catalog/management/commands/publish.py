"""`manage.py publish FILE --path P --priority N`: publish content as this station's owner."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from catalog import services
from catalog.blobstore import CHUNK
from catalog.entries import callsign_for_url


class Command(BaseCommand):
    help = ("Publish a file as content of this station's owner, signed by the station "
            "(a new version when the path exists), or delete a path with --delete (a tombstone "
            "that replicates). The station must be claimed first.")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", nargs="?", help="The file to publish ('-' reads stdin).")
        parser.add_argument("--path", required=True,
                            help="Content path, e.g. notices/shelters.html (at most 255 "
                                 "characters, no '..').")
        parser.add_argument("--priority", default="3",
                            help="1 essential (every station), 2 popular (by demand), "
                                 "3 standard (cached on access; default), 4 personal "
                                 "(origin only).")
        parser.add_argument("--content-type", default=None,
                            help="Media type; default: guessed from the path.")
        parser.add_argument("--delete", action="store_true",
                            help="Delete the path instead (publishes a tombstone).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["delete"]:
                if options["file"]:
                    raise CommandError("--delete takes no FILE")
                entry = services.content_delete(path=options["path"])
                self.stdout.write(f"deleted {entry.url_path} (tombstone {entry.entry_id})")
                return
            if not options["file"]:
                raise CommandError("give the FILE to publish (or --delete)")
            entry = self._publish(options["file"], options["path"], options["priority"],
                                  options["content_type"])
        except services.CatalogError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc
        self.stdout.write(self.style.SUCCESS(
            f"published /c/{callsign_for_url(entry.origin_callsign)}/{entry.path} "
            f"({entry.size} bytes, priority {entry.priority}, {entry.content_type})\n"
            f"entry {entry.entry_id}\nsha256 {entry.content_hash}"))

    def _publish(self, name: str, path: str, priority: str, content_type: str | None) -> Any:
        if name == "-":
            handle = sys.stdin.buffer
            total = 0
        else:
            source = Path(name)
            if not source.is_file():
                raise CommandError(f"{name}: no such file")
            total = source.stat().st_size
            handle = source.open("rb")
        shown = [-1]

        def progress(done: int) -> None:
            if total >= 4 * CHUNK:
                percent = done * 100 // total
                if percent // 10 != shown[0]:
                    shown[0] = percent // 10
                    self.stderr.write(f"  {done:>12,} / {total:,} bytes ({percent}%)")

        def chunks() -> Any:
            while block := handle.read(CHUNK):
                yield block

        try:
            return services.content_publish(path=path, chunks=chunks(), priority=priority,
                                            content_type=content_type, progress=progress)
        finally:
            if handle is not sys.stdin.buffer:
                handle.close()
