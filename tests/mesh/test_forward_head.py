"""The requesting end of a forwarded request takes the body's first bytes from the holder's
answer only when they are what it asked for: a chunk size no larger than it asked, exactly
min(chunk, size) bytes of base64; the rest is pulled from where the head ends, in chunks of
the size the path allowed."""

from __future__ import annotations

import base64

import pytest

from mesh.forwarding import CHUNK, WINDOW, Fetch, ForwardError


def _fetch(size: int) -> Fetch:
    fetch = Fetch("a" * 32, "content", {"entry": "b" * 64})
    fetch.meta = {"size": size}
    return fetch


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_the_head_comes_with_the_answer_and_the_rest_follows_in_the_paths_chunks() -> None:
    fetch = _fetch(10_000)
    fetch._take_head(4096, _b64(bytes(4096)))  # an RF hop on the path lowered it to 4096
    assert fetch.chunk == 4096 and len(fetch.head) == 4096
    assert [offset for batch in fetch.offsets() for offset in batch] == [4096, 8192]
    small = _fetch(300)
    small._take_head(CHUNK, _b64(bytes(300)))
    assert small.head == bytes(300) and list(small.offsets()) == []  # one round trip


def test_an_older_holder_sends_no_head_and_everything_is_pulled() -> None:
    fetch = _fetch(3 * CHUNK)
    fetch._take_head(None, None)
    assert fetch.head == b"" and fetch.chunk == CHUNK
    assert list(fetch.offsets()) == [[0, CHUNK, 2 * CHUNK][:WINDOW]]


@pytest.mark.parametrize(("chunk", "data", "code"), [
    (CHUNK + 1, _b64(bytes(CHUNK)), "malformed"),   # more than it asked for
    (0, "", "malformed"),
    (True, _b64(b"x"), "malformed"),
    (100, _b64(bytes(99)), "short_chunk"),          # fewer bytes than said
    (100, "not base64!", "short_chunk"),
    (100, 7, "short_chunk"),
])
def test_a_bad_head_is_refused_with_a_reason(chunk, data, code) -> None:
    fetch = _fetch(1000)
    with pytest.raises(ForwardError) as raised:
        fetch._take_head(chunk, data)
    assert raised.value.code == code
    assert fetch.head == b""
