"""Small real wheels made in code: a toy `meshsite` (with a `meshsite` console script that
prints its version) and toy dependencies, for release tests that need no network and install in
seconds."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def toy_wheel(folder: Path, project: str = "meshsite", version: str = "0.1.0",
              requires: tuple[str, ...] = (), tag: str = "py3-none-any") -> Path:
    """A pure-Python wheel `project` at `version`; the module `project_toy` prints the version,
    and for `meshsite` a console script `meshsite` runs it."""
    module = project.replace("-", "_") + "_toy"
    dist = f"{project.replace('-', '_')}-{version}.dist-info"
    metadata = "\n".join([
        "Metadata-Version: 2.1", f"Name: {project}", f"Version: {version}",
        "Requires-Python: >=3.11", *(f"Requires-Dist: {r}" for r in requires), "", ""])
    files = {
        f"{module}/__init__.py": (
            "import sys\n"
            f"def main():\n    print({project!r}, {version!r}, ' '.join(sys.argv[1:]))\n"
        ).encode(),
        f"{dist}/METADATA": metadata.encode(),
        f"{dist}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: meshsite-tests\nRoot-Is-Purelib: "
                          f"true\nTag: {tag}\n").encode(),
    }
    if project == "meshsite":
        files[f"{dist}/entry_points.txt"] = (
            f"[console_scripts]\nmeshsite = {module}:main\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{project.replace('-', '_')}-{version}-{tag}.whl"
    record = [_record_line(name, data) for name, data in files.items()]
    record.append(f"{dist}/RECORD,,")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return path
