"""Software transfer figures: `python -m bench.release [--wheels DIR] [--offline]`.

One real station (`runstation` on loopback, own data dir, claimed by a test LoTW operator):

- release size per platform: the release is built from wheels for every target of
  `catalog.release.TARGETS` and CPython 3.11 and 3.12, downloaded with `pip download` (needs the
  internet; cached in bench/results/release-wheels) unless `--offline`, which takes the
  dependency wheels scripts/bootstrap keeps for this machine (~/.cache/meshsite-tests/wheelhouse)
  and measures this platform only. Per target: the bytes a fresh install downloads there (the
  wheels whose tags serve it, for cp311; pure wheels count everywhere), and the wheels left out
  (no wheel for that platform).
- build time: `manage.py release build --wheels` of that folder into the station (hashing,
  metadata, catalog publishing; the meshsite wheel is built from this checkout first, timed
  apart).
- fresh install time: the standard-library installer into a new virtual environment from the
  station's /simple/ on loopback (venv creation, pip with --require-hashes), for this platform.
- index answer time: `/simple/<project>/` of a project with 100 files (a second release of 100
  small wheels), HTML and PEP 691 JSON, median and max of 50 requests each.

The machine's load average is printed first. Every process is started here and stopped by its
PID.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from catalog import release as rel
from tests.catalog.wheels import toy_wheel
from tests.certificates import pki
from tests.harness import REPO, StationProcess, http_json
from tests.mesh.stations import provision

RESULTS = REPO / "bench" / "results"
WHEELHOUSE = Path(os.environ.get("E2E_CACHE_DIR", Path.home() / ".cache" / "meshsite-tests")
                  ) / "wheelhouse"
INSTALLER = REPO / "catalog" / "meshsite_install.py"


def _project_wheel(out: Path) -> tuple[Path, float]:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(REPO)], check=True, capture_output=True,
                   env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    return next(out.glob("meshsite-*.whl")), time.monotonic() - started


def _download_all(out: Path) -> list[dict]:
    """Wheels for every target (as `release build` fetches them), run in a plain process."""
    code = ("import json, sys; from pathlib import Path; import django; django.setup(); "
            "from catalog import releases, release as rel; "
            "missing = releases.wheels_download(out=Path(sys.argv[1]), targets=list(rel.TARGETS),"
            " pythons=list(rel.PYTHONS), progress=print); print('MISSING', json.dumps(missing))")
    with tempfile.TemporaryDirectory() as data_dir:
        result = subprocess.run([sys.executable, "-c", code, str(out)], cwd=REPO, text=True,
                                capture_output=True, check=False,
                                env={**os.environ, "DJANGO_SETTINGS_MODULE": "meshsite.settings",
                                     "MESHSITE_DATA_DIR": data_dir, "MESHSITE_MDNS": "off"})
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    line = next(x for x in result.stdout.splitlines() if x.startswith("MISSING "))
    return json.loads(line.split(" ", 1)[1])


def _sizes(folder: Path, missing: list[dict], offline: bool) -> None:
    print("\nrelease size per platform (cp311; what a fresh install there downloads):")
    if offline:
        print("  (offline: only this machine's platform wheels are at hand; other platforms "
              "show the pure wheels alone)")
    for target in rel.TARGETS:
        total = count = 0
        for wheel in folder.glob("*.whl"):
            name = rel.wheel_name(wheel.name)
            serves = rel.platform_of(name.platform)
            pythons = set(name.python.split("."))
            if target in serves and (pythons & {"cp311", "py3", "py311", "py2.py3"}
                                     or name.abi == "abi3"):
                total += wheel.stat().st_size
                count += 1
        left = sorted({m["project"] for m in missing if m["platform"] == target})
        print(f"  {target:<15} {total / 1e6:8.1f} MB in {count:3d} wheels"
              + (f"   no wheel: {', '.join(left)}" if left else ""))
    everything = sum(w.stat().st_size for w in folder.glob("*.whl"))
    print(f"  {'whole release':<15} {everything / 1e6:8.1f} MB in "
          f"{len(list(folder.glob('*.whl'))):3d} wheels (every target, cp311 and cp312)")


def _timed_gets(url: str, auth: str, accept: str, count: int = 50) -> list[float]:
    times = []
    for _ in range(count):
        request = urllib.request.Request(url, headers={"Authorization": auth, "Accept": accept})
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        times.append(time.monotonic() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheels", type=Path, help="Folder of wheels to build the release from.")
    parser.add_argument("--offline", action="store_true",
                        help="Use the bootstrap wheelhouse (this platform only).")
    parser.add_argument("--sizes-only", action="store_true",
                        help="Only collect the wheels and print the sizes (no station).")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f} on {os.cpu_count()} CPUs")
    work = Path(tempfile.mkdtemp(prefix="bench-release-"))
    folder = work / "release"
    folder.mkdir()
    missing: list[dict] = []
    if args.wheels:
        source = args.wheels
    elif args.offline:
        source = WHEELHOUSE
    else:
        source = RESULTS / "release-wheels"
        source.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            missing = _download_all(source)
            print(f"pip download for {len(rel.TARGETS)} targets x {len(rel.PYTHONS)} Pythons: "
                  f"{time.monotonic() - started:.1f} s")
        except RuntimeError as exc:
            print(f"download failed ({str(exc)[-300:]}); using the offline wheelhouse")
            source = WHEELHOUSE
    for wheel in source.glob("*.whl"):
        if rel.wheel_name(wheel.name).project != "meshsite":
            shutil.copy(wheel, folder)
    project, took = _project_wheel(work / "project")
    shutil.copy(project, folder)
    print(f"meshsite wheel (pip wheel --no-deps of the checkout): {took:.1f} s")
    _sizes(folder, missing, offline=source == WHEELHOUSE)
    if args.sizes_only:
        shutil.rmtree(work, ignore_errors=True)
        return 0

    station = StationProcess(work / "station", env={"MESHSITE_DOWNLOAD_TOKEN_RATE": "1000",
                                                    "MESHSITE_INDEX_RATE": "100000"})
    owner = pki.lotw_user("W1AW")
    provision(station, roots=[pki.lotw_root()], owner=owner, callsign="W1AW")
    station.start()
    try:
        started = time.monotonic()
        built = station.manage("release", "build", "--wheels", str(folder), timeout=1800)
        build_time = time.monotonic() - started
        if built.returncode != 0:
            print(built.stderr[-2000:])
            return 1
        print(f"\nbuild (release build --wheels, {len(list(folder.glob('*.whl')))} wheels): "
              f"{build_time:.1f} s\n  {built.stdout.strip().splitlines()[0]}")

        status, nonce = http_json(station.url + "/api/download-token/nonce", method="POST",
                                  body={})
        message = base64.b64decode(nonce["message"])
        status, token = http_json(station.url + "/api/download-token", method="POST", body={
            "certificate": owner.pem, "chain": owner.chain_pem, "nonce": nonce["nonce"],
            "signature": owner.sign(message)})
        assert status == 201, token
        root = work / "root.pem"
        root.write_text(pki.lotw_root().pem)
        started = time.monotonic()
        result = subprocess.run(
            [getattr(sys, "_base_executable", sys.executable), "-I", str(INSTALLER), "--index",
             station.url, "--callsign", "W1AW", "--token", token["token"], "--trust-root",
             str(root), "--venv", str(work / "venv"), "--yes", "--state-file",
             str(work / "state.json")], capture_output=True, text=True, check=False,
            env={k: v for k, v in os.environ.items() if not k.startswith("PIP_")})
        install_time = time.monotonic() - started
        print(f"fresh install from the station on loopback: {install_time:.1f} s "
              f"(exit {result.returncode})")
        if result.returncode != 0:
            print(result.stderr[-2000:])

        many = work / "many"
        toy_wheel(many, "meshsite", "0.0.1")
        for index in range(100):
            toy_wheel(many, "toy-dep", f"1.0.{index}")
        built = station.manage("release", "build", "--wheels", str(many), timeout=1800)
        assert built.returncode == 0, built.stderr[-2000:]
        auth = "Basic " + base64.b64encode(f"W1AW:{token['token']}".encode()).decode()
        url = station.url + "/simple/toy-dep/"
        _timed_gets(url, auth, "text/html", 5)  # warm-up
        print("\n/simple/toy-dep/ with 100 files (50 requests each):")
        for accept in ("text/html", "application/vnd.pypi.simple.v1+json"):
            times = _timed_gets(url, auth, accept)
            print(f"  {accept:<40} median {statistics.median(times) * 1000:7.1f} ms, "
                  f"max {max(times) * 1000:7.1f} ms")
    finally:
        station.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
