"""A lean asyncio WebSocket client for load generation (RFC 6455, text frames only).

The load generator must not be the bottleneck, so this skips everything a benchmark client does
not need: no compression, no fragmentation on send, and a zero masking key (the key must be
present but may be any value, so the payload goes out unchanged and no XOR pass is needed).
Received frames are parsed from one growing buffer; continuation frames, ping (answered with
pong) and close are handled.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
from collections.abc import Callable

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_ZERO_MASK = b"\x00\x00\x00\x00"


def text_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A final, masked (zero key) frame carrying `payload`."""
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, 0x80 | size))
    elif size < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + struct.pack("!H", size)
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + struct.pack("!Q", size)
    return header + _ZERO_MASK + payload


class WsClient(asyncio.Protocol):
    """One client connection. `on_message(client, payload)` gets each text/binary message;
    `on_close(client, code)` is called once when the connection ends (code None: no close frame).
    """

    def __init__(self, host: str, port: int, path: str,
                 on_message: Callable[[WsClient, bytes], None],
                 on_close: Callable[[WsClient, int | None], None], tag: object = None) -> None:
        self.host, self.port, self.path = host, port, path
        self.on_message = on_message
        self.on_close = on_close
        self.transport: asyncio.Transport | None = None
        self.open: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._key = base64.b64encode(os.urandom(16))
        self._upgraded = False
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._closed = False
        self.close_code: int | None = None
        self.tag = tag  # the owner's data, there before the first message

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] - uvloop's is no subclass
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self._key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://{self.host}:{self.port}\r\n\r\n"
        )
        transport.write(request.encode())

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._upgraded and not self._handshake():
            return
        self._parse()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.open.done():
            self.open.set_exception(ConnectionError(f"connection lost before upgrade: {exc}"))
        self._finish(self.close_code)

    # --- sending ---------------------------------------------------------------------------

    def send(self, payload: bytes) -> None:
        if self.transport is not None and not self._closed:
            self.transport.write(text_frame(payload))

    def close(self, code: int = 1000) -> None:
        if self.transport is not None and not self._closed:
            self.transport.write(text_frame(struct.pack("!H", code), opcode=0x8))
            self.transport.close()

    # --- internals -------------------------------------------------------------------------

    def _handshake(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > 16384:
                self._fail("handshake response too long")
            return False
        head = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[:end + 4]
        status = head.split("\r\n", 1)[0]
        if " 101 " not in status + " ":
            self._fail(f"upgrade refused: {status}")
            return False
        expected = base64.b64encode(hashlib.sha1(self._key + _GUID).digest()).decode()  # noqa: S324 - RFC 6455
        if expected not in head:
            self._fail("bad Sec-WebSocket-Accept")
            return False
        self._upgraded = True
        if not self.open.done():
            self.open.set_result(None)
        return True

    def _fail(self, reason: str) -> None:
        if not self.open.done():
            self.open.set_exception(ConnectionError(reason))
        if self.transport is not None:
            self.transport.close()

    def _parse(self) -> None:
        buf = self._buffer
        offset = 0
        size = len(buf)
        while size - offset >= 2:
            b0 = buf[offset]
            b1 = buf[offset + 1]
            length = b1 & 0x7F
            pos = offset + 2
            if length == 126:
                if size - pos < 2:
                    break
                length = (buf[pos] << 8) | buf[pos + 1]
                pos += 2
            elif length == 127:
                if size - pos < 8:
                    break
                (length,) = struct.unpack_from("!Q", buf, pos)
                pos += 8
            if b1 & 0x80:  # servers must not mask; tolerate it anyway
                if size - pos < 4 + length:
                    break
                mask = bytes(buf[pos:pos + 4])
                pos += 4
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(buf[pos:pos + length]))
            else:
                if size - pos < length:
                    break
                payload = bytes(buf[pos:pos + length])
            offset = pos + length
            self._frame(b0 & 0x80, b0 & 0x0F, payload)
        if offset:
            del buf[:offset]

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode in (0x1, 0x2):
            if fin:
                self.on_message(self, payload)
            else:
                self._fragments = [payload]
        elif opcode == 0x0:
            self._fragments.append(payload)
            if fin:
                message, self._fragments = b"".join(self._fragments), []
                self.on_message(self, message)
        elif opcode == 0x9:
            if self.transport is not None and not self._closed:
                self.transport.write(text_frame(payload, opcode=0xA))
        elif opcode == 0x8:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            if self.transport is not None and not self._closed:
                self.transport.write(text_frame(payload[:2], opcode=0x8))
                self.transport.close()
            self._finish(self.close_code)

    def _finish(self, code: int | None) -> None:
        if not self._closed:
            self._closed = True
            self.on_close(self, code)


async def open_client(host: str, port: int, path: str,
                      on_message: Callable[[WsClient, bytes], None],
                      on_close: Callable[[WsClient, int | None], None],
                      tag: object = None, timeout: float = 30.0) -> WsClient:
    """Connect and complete the upgrade; raise ConnectionError/TimeoutError when that fails."""
    loop = asyncio.get_running_loop()
    _, client = await asyncio.wait_for(
        loop.create_connection(lambda: WsClient(host, port, path, on_message, on_close, tag),
                               host, port), timeout)
    await asyncio.wait_for(asyncio.shield(client.open), timeout)
    return client
