"""Audio from a Direwolf's ALSA `file` plugin (raw 16-bit mono samples at 44100 Hz on stdin)
to the UDP audio input of the other Direwolf, on 127.0.0.1:PORT of the namespace this runs in
(stdlib only): `python rf_udpfwd.py PORT`.

The plugin's `null` slave takes audio as fast as Direwolf makes it, far faster than real time;
sent on at that speed, a long frame overflows the receiver's socket buffer and arrives with
holes. So the audio is paced to real time, as a radio would carry it. Datagrams stay under
Direwolf's 2000-byte limit."""

from __future__ import annotations

import contextlib
import socket
import sys
import time

BYTES_PER_SECOND = 44100 * 2
AHEAD = 0.05  # seconds of audio allowed ahead of real time


def main() -> None:
    port = int(sys.argv[1])
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    started, sent = time.monotonic(), 0
    while data := sys.stdin.buffer.read1(1024):
        now = time.monotonic()
        if now - started > sent / BYTES_PER_SECOND + 0.5:
            started, sent = now, 0  # after a pause: a new transmission starts now
        ahead = sent / BYTES_PER_SECOND - (now - started)
        if ahead > AHEAD:
            time.sleep(ahead - AHEAD)
        # The receiving Direwolf not up yet (or gone): that audio is lost, as on the air.
        with contextlib.suppress(OSError):
            out.sendto(data, ("127.0.0.1", port))
        sent += len(data)


if __name__ == "__main__":
    main()
