"""meshd's radio sets channel access from the stations it hears (mesh/radio.py): the TNC's
persistence and the background budget follow their number, and for its first minutes on the
air a station assumes two others."""

from __future__ import annotations

import time

import pytest
from django.test import override_settings

from mesh import kiss
from mesh.radio import Radio
from mesh.rf_link import COLD_START, COLD_START_OTHERS, persistence_for, share_for

pytestmark = pytest.mark.django_db


@override_settings(RF_AIRTIME_SHARE=0.5)
async def test_persistence_and_budget_follow_the_stations_heard_after_a_cold_start() -> None:
    radio = Radio(url="tcp://127.0.0.1:9", redis=None)
    await radio.tune_access()  # just on the air: two others assumed
    assert radio.persistence == persistence_for(COLD_START_OTHERS) == 31
    assert radio.link.parameters[kiss.Command.PERSISTENCE] == 31  # sent on connect
    assert radio.rf.bucket.share == pytest.approx(share_for(0.5, COLD_START_OTHERS))
    radio.started = time.monotonic() - COLD_START - 1  # listened long enough: nobody heard
    await radio.tune_access()
    assert radio.persistence == 63 and radio.rf.bucket.share == 0.5
    now = time.time()
    radio.heard = {"DL2B-10": now, "DL3C-10": now - 30, "DL4D-10": now - 5,
                   "DL5E-10": now - 3600}  # the last one not heard for an hour
    await radio.tune_access()
    assert radio.persistence == persistence_for(3) == 20
    assert radio.rf.bucket.share == pytest.approx(0.15)  # 60 % among four stations
    assert radio.state()["persistence"] == 20 and radio.state()["budgetShare"] == 0.15
