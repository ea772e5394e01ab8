"""Two aiortc peers open a real WebRTC data channel, signaled through a station's `/ws/signal`.

The station is a real daphne process; the offer, the answer and the ICE candidates (trickled one
by one, then an end-of-candidates marker) cross it as OFFER / ANSWER / ICE_CANDIDATE frames. On
loopback aioice skips 127.0.0.0/8, so the host addresses are pinned to 127.0.0.1
(specs/test-infrastructure.md): the only thing replaced here, since a test machine's other
interfaces must not carry the test's traffic.
"""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCIceCandidate, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp, candidate_to_sdp

from tests.harness import DaphneProcess
from tests.signaling.e2e.native import NativeSignalClient
from tests.signaling.e2e.station import daphne, migrated_dir  # noqa: F401 - fixtures


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses",
                        lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"])


def _split_candidates(sdp: str) -> tuple[str, list[str]]:
    """The SDP without its candidate lines, and those candidates (to trickle them)."""
    kept, candidates = [], []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            candidates.append(line.removeprefix("a="))
        elif line != "a=end-of-candidates":
            kept.append(line)
    return "\r\n".join(kept) + "\r\n", candidates


def _ice_from_frame(frame: dict) -> RTCIceCandidate | None:
    payload = frame["candidate"]
    if not payload.get("candidate"):
        return None  # end of candidates
    candidate = candidate_from_sdp(payload["candidate"].removeprefix("candidate:"))
    candidate.sdpMid = payload.get("sdpMid")
    candidate.sdpMLineIndex = payload.get("sdpMLineIndex")
    return candidate


async def _channel_message(channel, timeout: float = 20.0) -> str:
    received: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    @channel.on("message")
    def _on_message(message: str) -> None:
        if not received.done():
            received.set_result(message)

    return await asyncio.wait_for(received, timeout)


@pytest.mark.integration
@pytest.mark.timeout(120)
async def test_two_aiortc_peers_open_a_data_channel_through_ws_signal(
        daphne: DaphneProcess) -> None:  # noqa: F811 - pytest fixture
    url = daphne.ws_url + "/ws/signal"
    async with NativeSignalClient(url) as alice, NativeSignalClient(url) as bob:
        await alice.register("GUEST")
        await bob.register("GUEST")
        assert alice.client_id != bob.client_id

        caller, callee = RTCPeerConnection(), RTCPeerConnection()
        try:
            channel = caller.createDataChannel("chat")
            caller_open = asyncio.get_running_loop().create_future()
            channel.on("open", lambda: caller_open.done() or caller_open.set_result(True))
            callee_channel: asyncio.Future = asyncio.get_running_loop().create_future()
            callee.on("datachannel", lambda ch: callee_channel.done()
                      or callee_channel.set_result(ch))

            # Alice: offer without candidates, then trickle them as ICE_CANDIDATE frames.
            await caller.setLocalDescription(await caller.createOffer())
            offer_sdp, candidates = _split_candidates(caller.localDescription.sdp)
            assert candidates, "aiortc gathered no candidate on 127.0.0.1"
            await alice.send({"type": "OFFER", "target": bob.client_id,
                              "offer": {"type": "offer", "sdp": offer_sdp}})
            for line in candidates:
                await alice.send({"type": "ICE_CANDIDATE", "target": bob.client_id,
                                  "candidate": {"candidate": line, "sdpMid": "0",
                                                "sdpMLineIndex": 0}})
            await alice.send({"type": "ICE_CANDIDATE", "target": bob.client_id,
                              "candidate": {"candidate": "", "sdpMid": "0",
                                            "sdpMLineIndex": 0}})

            # Bob: the station says who it is from; answer that id.
            offered = await bob.expect("OFFER_RECEIVED")
            assert offered["from"] == alice.client_id
            assert offered["offer"]["sdp"] == offer_sdp
            await callee.setRemoteDescription(RTCSessionDescription(**offered["offer"]))
            for _ in range(len(candidates) + 1):
                frame = await bob.expect("ICE_CANDIDATE_RECEIVED")
                assert frame["from"] == alice.client_id
                await callee.addIceCandidate(_ice_from_frame(frame))
            await callee.setLocalDescription(await callee.createAnswer())
            await bob.send({"type": "ANSWER", "target": offered["from"],
                            "answer": {"type": "answer", "sdp": callee.localDescription.sdp}})

            answered = await alice.expect("ANSWER_RECEIVED")
            assert answered["from"] == bob.client_id
            await caller.setRemoteDescription(RTCSessionDescription(**answered["answer"]))

            await asyncio.wait_for(caller_open, 20)
            bob_channel = await asyncio.wait_for(callee_channel, 20)
            assert bob_channel.label == "chat"

            bob_gets = asyncio.ensure_future(_channel_message(bob_channel))
            channel.send("hello from alice")
            assert await bob_gets == "hello from alice"
            alice_gets = asyncio.ensure_future(_channel_message(channel))
            bob_channel.send("hello from bob")
            assert await alice_gets == "hello from bob"
            assert caller.iceConnectionState == "completed" or caller.iceConnectionState == (
                "connected")
        finally:
            await caller.close()
            await callee.close()


def test_candidate_lines_round_trip() -> None:
    """The trickle helpers keep what aiortc needs: a candidate line parses back unchanged."""
    line = "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host"
    frame = {"candidate": {"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0}}
    candidate = _ice_from_frame(frame)
    assert candidate is not None
    assert "candidate:" + candidate_to_sdp(candidate) == line
    assert _ice_from_frame({"candidate": {"candidate": "", "sdpMid": "0"}}) is None
    sdp, found = _split_candidates(f"v=0\r\na={line}\r\na=end-of-candidates\r\n")
    assert found == [line] and "candidate" not in sdp
