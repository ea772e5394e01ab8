"""Every bad environment value stops the station with a message naming the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from meshsite import env
from tests.harness import REPO, station_env


@pytest.mark.parametrize(("reader", "value", "expected"), [
    (lambda: env.env_int("MESHSITE_X", 1, minimum=1, maximum=10), "abc", "integer from 1 to 10"),
    (lambda: env.env_int("MESHSITE_X", 1, minimum=1, maximum=10), "11", "integer from 1 to 10"),
    (lambda: env.env_int("MESHSITE_X", 1, minimum=1), "0", "integer from 1 to inf"),
    (lambda: env.env_float("MESHSITE_X", 1.0, minimum=0.0), "-2", "a number from 0.0"),
    (lambda: env.env_float("MESHSITE_X", 1.0), "fast", "a number"),
    (lambda: env.env_bool("MESHSITE_X", True), "maybe", "on/off"),
    (lambda: env.env_choice("MESHSITE_X", "a", ["a", "b"]), "c", "one of a, b"),
    (lambda: env.env_url("MESHSITE_X", ["redis", "unix"]), "http://x", "redis:// or unix://"),
    (lambda: env.env_file_or_str("MESHSITE_X"), None, "MESHSITE_X_FILE"),
])
def test_bad_values_name_the_variable(monkeypatch, reader, value, expected):
    if value is None:
        monkeypatch.setenv("MESHSITE_X_FILE", "/nonexistent/secret")
    else:
        monkeypatch.setenv("MESHSITE_X", value)
    with pytest.raises(ImproperlyConfigured) as info:
        reader()
    assert "MESHSITE_X" in str(info.value)
    assert expected in str(info.value)


def test_good_values_are_typed(monkeypatch, tmp_path):
    monkeypatch.setenv("MESHSITE_I", " 42 ")
    monkeypatch.setenv("MESHSITE_B", "OFF")
    monkeypatch.setenv("MESHSITE_L", "eth0, ,wlan0")
    monkeypatch.setenv("MESHSITE_C", "Debug")
    secret = tmp_path / "s"
    secret.write_text("hunter2\nignored\n")
    monkeypatch.setenv("MESHSITE_S_FILE", str(secret))
    assert env.env_int("MESHSITE_I", 1) == 42
    assert env.env_bool("MESHSITE_B", True) is False
    assert env.env_list("MESHSITE_L", []) == ["eth0", "wlan0"]
    assert env.env_choice("MESHSITE_C", "info", ["debug", "info"]) == "debug"
    assert env.env_file_or_str("MESHSITE_S") == "hunter2"
    assert env.env_int("MESHSITE_UNSET", 7) == 7


@pytest.mark.parametrize(("name", "value"), [
    ("MESHSITE_PORT", "eighty"),
    ("MESHSITE_PORT", "70000"),
    ("MESHSITE_MDNS", "sometimes"),
    ("MESHSITE_LOG_LEVEL", "loud"),
    ("REDIS_URL", "http://127.0.0.1:6379"),
    ("DATABASE_URL", "mysql://localhost/x"),
])
def test_station_commands_exit_nonzero_naming_the_variable(tmp_path: Path, name, value):
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO,
                            env=station_env(tmp_path, **{name: value}),
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert name in result.stderr
    assert "Traceback" not in result.stderr


def test_secret_key_generated_once_with_mode_0600(tmp_path: Path):
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    run = [sys.executable, "-c", f"import django; django.setup(); {code}"]
    first = subprocess.run(run, cwd=REPO, env=station_env(tmp_path), capture_output=True,
                           text=True, timeout=60, check=True).stdout.strip()
    second = subprocess.run(run, cwd=REPO, env=station_env(tmp_path), capture_output=True,
                            text=True, timeout=60, check=True).stdout.strip()
    key_file = tmp_path / "secret_key"
    assert first == second == key_file.read_text().strip()
    assert len(first) >= 50
    assert key_file.stat().st_mode & 0o777 == 0o600
