"""Debian's Chromium for the browser tests (specs/test-infrastructure.md): how it is launched,
the private network namespace it runs in, and what it needs."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHROMIUM = "/usr/bin/chromium"

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]

# Run inside `unshare -n bash -c`: loopback plus a veth pair with a default route, so that
# Chromium gathers WebRTC host candidates (on 10.99.0.1) and nothing can leave the namespace.
NETNS_SETUP = (
    "set -e; ip link set lo up; ip link add v0 type veth peer name v1; "
    "ip addr add 10.99.0.1/24 dev v0; ip link set v1 up; ip link set v0 up; "
    "ip route add default dev v0; "
)


def chromium_missing(*tools: str) -> str | None:
    """Why the browser tests cannot run here (None when they can); `tools` are further
    commands they need besides Chromium, unshare and ip."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed (apt-get install --no-install-recommends chromium)"
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/bootstrap installs it)"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare/ip are not installed (util-linux, iproute2)"
    if os.geteuid() != 0:
        return "needs root for `unshare -n` and a veth pair"
    return None


def run_in_namespace(script: Path, *args: str, timeout: float) -> dict:
    """Run `python script args...` in a fresh private namespace (NETNS_SETUP) and return the
    JSON object it prints last; fail with the end of its stderr if it exits non-zero."""
    command = " ".join([NETNS_SETUP, "exec", shlex.quote(sys.executable), shlex.quote(str(script)),
                        *(shlex.quote(arg) for arg in args)])
    completed = subprocess.run(["unshare", "-n", "bash", "-c", command], cwd=REPO,
                               capture_output=True, text=True, timeout=timeout, check=False)
    assert completed.returncode == 0, (
        f"browser run failed ({completed.returncode}):\n{completed.stderr[-8000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])
