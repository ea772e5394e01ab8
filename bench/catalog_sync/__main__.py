"""`.venv/bin/python -m bench.catalog_sync [--serve]`: reconciliation figures; with --serve,
also requests per second and p99 serving a 1 MB entry from a real station."""

from __future__ import annotations

import sys

from bench.catalog_sync import sync


def main() -> None:
    sync.main()
    if "--serve" in sys.argv[1:] or "--all" in sys.argv[1:]:
        from bench.catalog_sync import serve

        serve.main()


if __name__ == "__main__":
    main()
