"""Frames from a hostile or broken peer on /ws/coordinate end in a protocol error or a quiet
drop, never in an exception of the station (found by `python -m bench.faults malformed`)."""

from __future__ import annotations

import pytest
from autobahn.exception import Disconnected

from mesh import protocol
from mesh.consumers import CoordinateConsumer
from mesh.links import LinkRefused
from mesh.protocol import ProtocolError


@pytest.mark.parametrize("nested", ["[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000])
def test_a_frame_nested_past_the_parser_limit_is_malformed_not_a_recursion_error(nested):
    with pytest.raises(ProtocolError) as caught:
        protocol.parse_frame(nested)
    assert caught.value.code == "malformed" and "nested" in caught.value.detail


async def test_a_reply_to_a_peer_that_left_is_a_closed_link_not_a_transport_exception():
    """A handler that answers after the peer left: LinkSession drops a LinkRefused reply, but
    autobahn's Disconnected escaped as "Task exception was never retrieved"."""
    consumer = CoordinateConsumer()

    async def gone(**_kwargs):
        raise Disconnected("Attempt to send on a closed protocol")

    consumer.send = gone
    with pytest.raises(LinkRefused) as caught:
        await consumer._send_text('{"type":"REPLY"}')
    assert caught.value.code == "closed"
