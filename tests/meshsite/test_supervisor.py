"""The supervisor restarts a dying part with backoff, and stops the station whole when a part
keeps dying; children are real processes."""

from __future__ import annotations

import os
import sys
import time

import psutil
import pytest

from mesh.supervisor import ChildSpec, StationFailed, Supervisor


def _spec(name: str, code: str, **kwargs) -> ChildSpec:
    return ChildSpec(name, [sys.executable, "-c", code], dict(os.environ), **kwargs)


def test_part_that_keeps_dying_stops_the_station_with_its_name_and_output():
    lines: list[str] = []
    supervisor = Supervisor(
        [_spec("sleeper", "import time; time.sleep(60)"),
         _spec("broken", "import sys; print('cannot open the radio port'); sys.exit(3)")],
        emit=lines.append, max_restarts=2, window=30, backoff_max=0.2)
    supervisor.start()
    sleeper = supervisor.children[0].process
    with pytest.raises(StationFailed) as info:
        supervisor.run(poll=0.05)
    supervisor.stop()
    message = str(info.value)
    assert "'broken'" in message
    assert "exit code 3" in message
    assert "cannot open the radio port" in message
    assert any("restarting" in line for line in lines)
    assert sleeper.poll() is not None, "the healthy part must be stopped too: no half-alive station"


def test_dead_part_is_restarted_and_stop_kills_grandchildren():
    lines: list[str] = []
    forker = ("import subprocess, sys, time;"
              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
              "time.sleep(60)")
    supervisor = Supervisor([_spec("forker", forker)], emit=lines.append, backoff_max=0.1)
    supervisor.start()
    first = supervisor.children[0].process
    deadline = time.monotonic() + 10
    while len(psutil.Process(first.pid).children()) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = psutil.Process(first.pid).children()[0]
    first.kill()
    first.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        supervisor._check(supervisor.children[0])
        current = supervisor.children[0].process
        if current is not None and current is not first:
            break
        time.sleep(0.05)
    second = supervisor.children[0].process
    assert second is not None and second.pid != first.pid
    assert any("restarted forker" in line for line in lines)
    _gone, alive = psutil.wait_procs([grandchild], timeout=5)
    assert not alive, "the dead part's own children must not outlive it"
    deadline = time.monotonic() + 10
    while len(psutil.Process(second.pid).children()) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    second_grandchild = psutil.Process(second.pid).children()[0]
    supervisor.stop()
    assert second.poll() is not None
    _gone, alive = psutil.wait_procs([second_grandchild], timeout=5)
    assert not alive


def test_part_not_ready_in_time_fails_start():
    supervisor = Supervisor([_spec("slow", "import time; time.sleep(60)", ready=lambda: False,
                                   ready_timeout=0.5)], emit=lambda line: None)
    with pytest.raises(StationFailed, match="not ready within"):
        supervisor.start()
    supervisor.stop()
    assert supervisor.children[0].process.poll() is not None
