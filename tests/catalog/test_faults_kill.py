"""The kill -9 figures (bench/faults/kill.py), short: three trials, alternately of the supervisor
alone and of every process at once, while four clients publish through the API and a peer
replicates. Nothing answered 201 is lost, nothing partial is visible, nothing of the killed
station is alive 10 s later, and it starts clean."""

from __future__ import annotations

import re

import pytest

from bench.faults import kill

pytestmark = pytest.mark.integration


def test_kill_9_loses_nothing_acknowledged_and_leaves_nothing_running(capsys):
    code = kill.main(["--trials", "3", "--max-delay", "1.5"])
    out = capsys.readouterr().out
    acknowledged = int(re.search(r"acknowledged publishes\s+(\d+)", out)[1])
    assert acknowledged >= 3, out  # every trial killed the station under load
    assert re.search(r"acknowledged entries lost\s+0 ", out), out
    assert re.search(r"partial entries visible\s+0 ", out), out
    assert re.search(r"leftover processes after 10s\s+0 ", out), out
    assert re.search(r"unclean starts\s+0 ", out), out
    assert code == 0, out
