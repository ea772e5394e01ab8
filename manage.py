#!/usr/bin/env python
"""Meshsite's command line: `python manage.py runstation`, `claimstation`, ..."""

from __future__ import annotations

from meshsite.cli import main

if __name__ == "__main__":
    main()
