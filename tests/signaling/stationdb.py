"""Django code run against a daphne's own data dir (its SQLite database), and the admin as an
operator uses it: a real login over HTTP with a cookie jar and the CSRF token of each form.

Everything here blocks. In an async test call it through `off_loop` (a thread): the test
daphnes ping every second and drop a client that has not answered within a second, so a test
that blocks its event loop for longer loses its own sockets."""

from __future__ import annotations

import asyncio
import http.cookiejar
import inspect
import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tests.harness import REPO
from tests.mesh.stations import run_django, wait_for
from tests.signaling.conftest import SignalingDaphne

T = TypeVar("T")

def django_run(process: SignalingDaphne, body: str, *args: str) -> str:
    """Run `body` with Django set up in `process`'s environment (its data dir, its Redis)."""
    return run_django(process, body, *args)  # type: ignore[arg-type] - needs .env, .data_dir


def manage(process: SignalingDaphne, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "manage.py"), *args], env=process.env,
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def trust_roots(process: SignalingDaphne, *pems: str) -> None:
    django_run(process, "from certificates import services as s\n"
                        "for pem in sys.argv[1:]:\n"
                        "    s.trustroot_add(certificate=pem)", *pems)


def blacklist(process: SignalingDaphne, fingerprint: str) -> None:
    django_run(process, "from certificates import services as s\n"
                        "s.certificate_blacklist(fingerprint=sys.argv[1], reason='test', "
                        "created_by='owner', source='console')", fingerprint)


def superuser(process: SignalingDaphne, username: str, password: str) -> None:
    django_run(process, """
from django.contrib.auth import get_user_model
user, _ = get_user_model().objects.get_or_create(username=sys.argv[1])
user.is_staff = user.is_superuser = user.is_active = True
user.set_password(sys.argv[2])
user.save()
""", username, password)


def sessions_insert(process: SignalingDaphne, rows: list[dict[str, Any]]) -> None:
    """SignalingSession rows with `started_ago` / `ended_ago` in seconds (None: still open)."""
    django_run(process, """
import datetime as dt
from django.utils import timezone
from signaling.models import SignalingSession
now = timezone.now()
for row in json.loads(sys.argv[1]):
    started, ended = row.pop("started_ago"), row.pop("ended_ago")
    SignalingSession.objects.create(
        started_at=now - dt.timedelta(seconds=started),
        ended_at=None if ended is None else now - dt.timedelta(seconds=ended), **row)
""", json.dumps(rows))


async def off_loop(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking helper in a thread, so the test's WebSockets keep answering pings."""
    return await asyncio.to_thread(function, *args, **kwargs)


async def eventually(probe: Callable[[], T | Awaitable[T]], timeout: float, what: str,
                     interval: float = 0.1) -> T:
    """Poll `probe` until it answers something true; that answer. The polling is the one wait
    helper (`tests.mesh.stations.wait_for`) in a thread, so this loop keeps answering pings:
    `probe` is called in that thread, and what it returns to await is awaited on this loop."""
    loop = asyncio.get_running_loop()
    answer: list[Any] = [None]

    async def resolve(awaitable: Awaitable[T]) -> T:
        return await awaitable

    def check() -> Any:
        result = probe()
        if inspect.isawaitable(result):
            result = asyncio.run_coroutine_threadsafe(resolve(result), loop).result()
        answer[0] = result
        return result

    await off_loop(wait_for, check, timeout, what, interval)
    return answer[0]


class AdminBrowser:
    """The Django admin of a daphne, through its login form like a person with a browser."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def _open(self, request: urllib.request.Request) -> tuple[int, str, str]:
        try:
            with self.opener.open(request, timeout=20) as response:
                return response.status, response.read().decode(), response.url
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace"), exc.url

    def get(self, path: str) -> tuple[int, str, str]:
        return self._open(urllib.request.Request(self.base + path))

    def post(self, path: str, fields: list[tuple[str, str]]) -> tuple[int, str, str]:
        """POST a form of the page at `path`, with the CSRF token that page carries."""
        status, html, _ = self.get(path)
        assert status == 200, (status, html[:500])
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        assert token, "no CSRF token in the form"
        data = urllib.parse.urlencode([("csrfmiddlewaretoken", token.group(1)), *fields])
        request = urllib.request.Request(self.base + path, data=data.encode(), method="POST")
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        request.add_header("Referer", self.base + path)
        return self._open(request)

    def login(self, username: str, password: str) -> None:
        status, html, url = self.post("/admin/login/?next=/admin/",
                                      [("username", username), ("password", password),
                                       ("next", "/admin/")])
        assert status == 200 and not url.rstrip("/").endswith("login"), (status, url, html[:800])
        assert "Log out" in html or "logout" in html, html[:800]
