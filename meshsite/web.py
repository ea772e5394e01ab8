"""One web process of a station: daphne serving a listening socket it inherited.

`runstation` opens the station's TCP socket once and starts `MESHSITE_WEB_PROCESSES` of these
on it (`python -m meshsite.web --listen-fd N [daphne options] meshsite.asgi:application`); the
kernel hands each new connection to one of them, so a flood that saturates one process leaves
the others answering, and a web process the supervisor restarts takes up the same socket with
no gap in listening.

daphne names its sockets with Twisted endpoint strings, and Twisted adopts an inherited socket
only through systemd's socket-activation protocol (`systemd:domain=INET:index=0`: descriptor 3,
`LISTEN_FDS`, `LISTEN_PID`), so this module moves the socket to descriptor 3, sets those two
variables for its own PID and runs daphne's command line in this process. No Django imports.
"""

from __future__ import annotations

import os
import socket
import sys

SD_LISTEN_FDS_START = 3


def adopt(fd: int) -> str:
    """Make inherited listening socket `fd` the first systemd-activated descriptor of this
    process; returns daphne's endpoint string for it."""
    try:
        probe = socket.socket(fileno=os.dup(fd))
    except OSError as exc:
        raise SystemExit(f"meshsite.web: descriptor {fd} is not a socket: {exc}") from exc
    family = probe.family
    probe.close()
    if fd != SD_LISTEN_FDS_START:
        os.dup2(fd, SD_LISTEN_FDS_START)
        os.close(fd)
    os.set_inheritable(SD_LISTEN_FDS_START, False)
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDNAMES"] = "web"  # Twisted wants as many names as descriptors
    domain = "INET6" if family == socket.AF_INET6 else "INET"
    return f"systemd:domain={domain}:index=0"


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "--listen-fd" or not argv[1].isdigit():
        print("usage: python -m meshsite.web --listen-fd N [daphne options] APPLICATION",
              file=sys.stderr)
        return 2
    endpoint = adopt(int(argv[1]))
    from daphne.cli import CommandLineInterface

    CommandLineInterface().run(["-e", endpoint, *argv[2:]])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
