"""Entry point shared by `manage.py` and the `meshsite` console script."""

from __future__ import annotations

import os
import sys


def _preparse_data_dir(argv: list[str]) -> None:
    """`runstation --data-dir D` must choose the data dir before settings load (the database, the
    secret key and the Redis socket all live there), so it is applied to the environment first."""
    if len(argv) < 2 or argv[1] != "runstation":
        return
    for index, arg in enumerate(argv):
        if arg == "--data-dir" and index + 1 < len(argv):
            os.environ["MESHSITE_DATA_DIR"] = argv[index + 1]
        elif arg.startswith("--data-dir="):
            os.environ["MESHSITE_DATA_DIR"] = arg.split("=", 1)[1]


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshsite.settings")
    _preparse_data_dir(argv)

    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 - load settings now to report bad values cleanly
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"meshsite: configuration error: {exc}\n")
        raise SystemExit(2) from exc
    execute_from_command_line(argv)


if __name__ == "__main__":
    main()
