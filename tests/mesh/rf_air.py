"""What the RF tests read back from the simulated channel: every mesh message whose fragments
all went on the air, and a mailbox request tried at a station (it must be refused, never sent
on the air)."""

from __future__ import annotations

from mesh.ax25 import Frame
from mesh.rf_codec import Fragment, decode_message, encode_message, parse_info
from tests.harness import StationProcess
from tests.mesh.stations import run_django

_MAILBOX_ATTEMPT = """
from signaling.mailbox import MailboxError
from signaling.mailbox_mesh import KIND_BUNDLE, _forward, lan_route_problem
print(lan_route_problem(sys.argv[1]).code)
try:
    _forward(sys.argv[1], KIND_BUNDLE, {"callsign": sys.argv[2], "device": "d" * 32})
except MailboxError as exc:
    print(exc.code, exc.detail)
"""


def messages_on_air(transmissions) -> list[dict]:
    """Every mesh message whose fragments all went on the air, decoded."""
    parts: dict[tuple[str, int, int], dict[int, bytes]] = {}
    for tx in transmissions:
        for raw in tx.frames:
            frame = Frame.decode(raw)
            item = parse_info(frame.info)
            if isinstance(item, Fragment):
                key = (str(frame.source), item.msg, item.count)
                parts.setdefault(key, {})[item.index] = item.chunk
    return [decode_message(b"".join(chunks[i] for i in range(count)))
            for (_, _, count), chunks in parts.items() if len(chunks) == count]


def by_type(messages: list[dict]) -> dict[str, list[int]]:
    """[count, encoded bytes] per message type (a reply under the type it answers), largest
    first."""
    asked = {m.get("id"): m.get("type") for m in messages if m.get("req")}
    out: dict[str, list[int]] = {}
    for message in messages:
        kind = str(message.get("type"))
        if kind in ("REPLY", "ERROR"):
            kind = f"{kind} to {asked.get(message.get('re'), '?')}"
        row = out.setdefault(kind, [0, 0])
        row[0] += 1
        row[1] += len(encode_message(message))
    return dict(sorted(out.items(), key=lambda item: -item[1][1]))


def mailbox_attempt(station: StationProcess, home: str, callsign: str) -> str:
    """Ask `station` for a prekey bundle of `callsign`'s operator homed at station `home`:
    the LAN-only route's problem code on the first line, then the refusal (code, detail)."""
    return run_django(station, _MAILBOX_ATTEMPT, home, callsign)


def assert_no_mail(messages: list[dict]) -> None:
    for message in messages:
        payload = message.get("payload") or {}
        assert message.get("type") != "MAILBOX_HOMES", message
        assert not str(payload.get("kind", "")).startswith("mailbox"), message
