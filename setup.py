"""Writes the build suffix of the version into meshsite/_build.py when the package is built or
installed (editable installs included), so `runstation --version` names the exact build."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.egg_info import egg_info


def _build_suffix() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=8", "HEAD"],
            capture_output=True, text=True, check=True, timeout=5,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{stamp}.g{sha}" if sha else f"{stamp}.local"


class EggInfoWithBuild(egg_info):
    def run(self) -> None:
        target = Path(__file__).parent / "meshsite" / "_build.py"
        target.write_text(
            '"""Written at build/install time by setup.py; do not edit."""\n'
            f'BUILD = "{_build_suffix()}"\n'
        )
        super().run()


setup(cmdclass={"egg_info": EggInfoWithBuild})
