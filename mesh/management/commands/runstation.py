"""`manage.py runstation`: start and supervise a whole station with one command."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import ssl
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from mesh.supervisor import ChildSpec, StationFailed, Supervisor
from mesh.tnc import TncError, parse_kiss_url
from meshsite import health
from meshsite import status as station_status
from meshsite.embedded_redis import INSTALL_HINT, redis_binary, server_command, wait_until_ready
from meshsite.version import full_version

LOCK_NAME = "runstation.lock"

PART_NAMES = {"database": "the database", "redis": "Redis", "web": "the web server (daphne)",
              "worker": "the Celery worker", "mesh": "the mesh daemon (meshd)",
              "meshd": "the mesh daemon (meshd)"}


class Command(BaseCommand):
    help = (
        "Start a whole Meshsite station and supervise it: applies migrations, collects static "
        "files, then runs the embedded Redis (unless REDIS_URL is set), daphne (HTTP, API, admin, "
        "WebSockets), a Celery worker with beat and the mesh daemon. Ctrl-C or SIGTERM stops "
        "every part."
    )
    requires_system_checks: list = []
    requires_migrations_checks = False

    def get_version(self) -> str:
        return full_version()

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=None,
                            help="HTTP/WebSocket port (default: MESHSITE_PORT or 8080).")
        parser.add_argument("--host", default=None,
                            help="Address to listen on (default: MESHSITE_HOST or 0.0.0.0).")
        parser.add_argument("--data-dir", default=None,
                            help="Folder holding the database, keys, blobs and Redis socket "
                                 "(default: MESHSITE_DATA_DIR or ~/.meshsite).")
        parser.add_argument("--no-mdns", action="store_true",
                            help="Do not advertise or browse for stations with mDNS.")
        parser.add_argument("--interface", action="append", default=None, metavar="NAME",
                            help="Network interface (name or address) for mDNS; repeat for several "
                                 "(default: MESHSITE_MDNS_INTERFACES or all).")
        parser.add_argument("--kiss", default=None, metavar="URL",
                            help="The radio's KISS TNC: tcp://HOST:PORT or "
                                 "serial:///dev/DEVICE?baud=N (default: MESHSITE_RF_KISS; "
                                 "none: no radio). See docs/radio.md.")
        parser.add_argument("--web-processes", type=int, default=None, metavar="N",
                            help="daphne processes sharing the station's socket (default: "
                                 "MESHSITE_WEB_PROCESSES or 2; 1 with TLS).")
        parser.add_argument("--verbose", action="store_true", help="Log at debug level.")
        parser.add_argument("--answer-timeout", type=float, default=30.0, metavar="SECONDS",
                            help="How long, once started, to wait for every part to answer "
                                 "before saying which does not (default 30).")

    # -- checks -----------------------------------------------------------------------------

    def _lock(self, data_dir: Path) -> Any:
        path = data_dir / LOCK_NAME
        handle = open(path, "a+")  # noqa: SIM115 - held open for the station's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise CommandError(
                f"another runstation (pid {holder}) is already running on data dir {data_dir}. "
                "Stop it first, or start this one with a different --data-dir."
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return handle

    def _listen(self, host: str, port: int) -> socket.socket:
        """The station's listening socket, opened here once and shared by every web process
        (a port in use is said at once, and a restarted web process finds it still open)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host == "::":
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # and IPv4
        try:
            listener.bind((host, port))
            listener.listen(1024)
        except OSError as exc:
            listener.close()
            reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"fails: {exc}"
            raise CommandError(
                f"port {port} on {host} {reason}. Choose another with --port or MESHSITE_PORT."
            ) from exc
        return listener

    def _check_port(self, host: str, port: int) -> None:
        """With TLS daphne binds the port itself: only check that it is free."""
        self._listen(host, port).close()

    # -- children ---------------------------------------------------------------------------

    def _child_env(self, host: str, port: int, options: dict[str, Any]) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "meshsite.settings"),
            "MESHSITE_DATA_DIR": str(settings.DATA_DIR),
            "MESHSITE_PORT": str(port),
            "MESHSITE_HOST": host,
            "MESHSITE_LOG_LEVEL": "debug" if options["verbose"] else settings.MESHSITE_LOG_LEVEL,
            "PYTHONUNBUFFERED": "1",
        })
        if options["no_mdns"]:
            env["MESHSITE_MDNS"] = "off"
        if options["kiss"]:
            env["MESHSITE_RF_KISS"] = options["kiss"]
        if options["interface"]:
            env["MESHSITE_MDNS_INTERFACES"] = ",".join(options["interface"])
        return env

    def _specs(self, host: str, port: int, env: dict[str, str], listener: socket.socket | None,
               web_processes: int) -> list[ChildSpec]:
        specs: list[ChildSpec] = []
        if settings.REDIS_EMBEDDED:
            binary = redis_binary()
            if binary is None:
                raise CommandError(INSTALL_HINT)
            socket_path = settings.REDIS_SOCKET
            socket_path.unlink(missing_ok=True)

            def redis_ready() -> bool:
                try:
                    wait_until_ready(socket_path, timeout=0.2)
                except RuntimeError:
                    return False
                return True

            specs.append(ChildSpec("redis", server_command(binary, socket_path, settings.DATA_DIR),
                                   env, redis_ready, 15, f"embedded Redis on {socket_path}",
                                   others_wait=True))
        probe_host = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)  # noqa: S104
        tls = _tls_files()
        status_url = f"{'https' if tls else 'http'}://{_bracket(probe_host)}:{port}/api/status"
        # Our own server on loopback: its certificate names the station, not 127.0.0.1.
        probe_context = ssl._create_unverified_context() if tls else None  # noqa: S323

        def web_ready() -> bool:
            try:
                with urllib.request.urlopen(  # noqa: S310 - our own http(s) status URL
                        status_url, timeout=1, context=probe_context) as response:
                    return response.status == 200
            except OSError:
                return False

        python = sys.executable
        daphne_args = ["--application-close-timeout", "5", "-v", "0", *daphne_ping_args(),
                       "meshsite.asgi:application"]
        if listener is None:  # with TLS `handle` opens none (see `_tls_files`)
            from meshsite.tls import daphne_ssl_endpoint

            # Twisted serves TLS only on a socket it binds itself: one web process.
            listen = ["-e", daphne_ssl_endpoint(host=host, port=port, cert=tls[0], key=tls[1])]
            commands = [([python, "-m", "daphne", *listen, *daphne_args], ())]
        else:
            fd = listener.fileno()
            commands = [([python, "-m", "meshsite.web", "--listen-fd", str(fd), *daphne_args],
                         (fd,))] * web_processes
        for n, (argv, fds) in enumerate(commands, start=1):
            first = n == 1
            specs.append(ChildSpec(
                "web" if first else f"web-{n}", argv, env, web_ready if first else None, 60,
                f"daphne{f' {n} of {len(commands)}' if len(commands) > 1 else ''} on "
                f"{_bracket(host)}:{port}",
                # The first alone: on a small busy host, booting the worker and meshd (and the
                # other web processes) beside it would delay the first answer of /api/status.
                # The others accept on the same socket once they are up.
                others_wait=first, pass_fds=fds))
        specs.append(ChildSpec(
            "worker", [python, "-m", "celery", "-q", "-A", "meshsite", "worker", "-B",
                       "--pool", "threads", "--concurrency", "4",
                       # One worker per station: nobody to mingle or gossip with, and the
                       # station's health reads its own heartbeat key (meshsite/health.py),
                       # not Celery's events. Mingling alone cost a second of every start.
                       "--without-mingle", "--without-gossip", "--without-heartbeat",
                       "--loglevel", "DEBUG" if env["MESHSITE_LOG_LEVEL"] == "debug" else "WARNING",
                       "--hostname", f"station-{os.getpid()}@%h",
                       "--schedule", str(settings.DATA_DIR / "celerybeat-schedule")],
            env, None, 0, "Celery worker with beat"))
        if "meshd" in get_commands():
            specs.append(ChildSpec("mesh", [python, "-m", "meshsite", "meshd"], env, None, 0,
                                   "mesh daemon (mDNS, station links, membership)"))
        return specs

    def _celery_round_trip(self, timeout: float) -> tuple[bool, str]:
        from meshsite.tasks import echo

        token = f"ping-{os.getpid()}-{time.time():.0f}"
        started = time.monotonic()
        try:
            result = echo.apply_async(args=[token], ignore_result=False).get(timeout=timeout)
        except Exception as exc:
            return False, f"no answer to a task within {timeout:.0f}s ({exc!r})"
        if result != token:
            return False, f"wrong answer from the worker: {result!r}"
        return True, f"ok, task round trip {1000 * (time.monotonic() - started):.0f} ms"

    def _not_answering(self, timeout: float) -> dict[str, str]:
        """{part: why} for every part that does not answer within `timeout` seconds: the worker
        by a task round trip, the others by the checks `/healthz` runs."""
        deadline = time.monotonic() + timeout
        ok, detail = self._celery_round_trip(max(1.0, timeout))
        self.stdout.write(f"worker: {detail}")
        problems = {} if ok else {"worker": detail}
        while True:
            report = health.report(web=False)
            report.pop("worker")  # the round trip above is the stronger proof
            failing = {name: r["detail"] for name, r in report.items() if not r["ok"]}
            if not failing or time.monotonic() >= deadline:
                return {**problems, **failing}
            time.sleep(0.5)

    # -- main -------------------------------------------------------------------------------

    def handle(self, *args: Any, **options: Any) -> None:
        host = options["host"] or settings.MESHSITE_HOST
        port = options["port"] or settings.MESHSITE_PORT
        if not 1 <= port <= 65535:
            raise CommandError(f"--port {port} is out of range: use 1 to 65535.")
        if options["kiss"]:
            try:
                options["kiss"] = str(parse_kiss_url(options["kiss"]))
            except TncError as exc:
                raise CommandError(f"--kiss is not valid: {exc}.") from exc
        data_dir: Path = settings.DATA_DIR
        out = self.stdout

        web_processes = options["web_processes"] or settings.MESHSITE_WEB_PROCESSES
        if not 1 <= web_processes <= 16:
            raise CommandError(f"--web-processes {web_processes} is out of range: use 1 to 16.")
        lock = self._lock(data_dir)
        listener = None if _tls_files() else self._listen(host, port)
        if listener is None:
            self._check_port(host, port)
        out.write(f"Meshsite {full_version()} starting; data dir {data_dir}")

        call_command("migrate", interactive=False, verbosity=0)
        out.write("database: migrations applied")
        call_command("collectstatic", interactive=False, verbosity=0)
        out.write(f"static files: collected into {settings.STATIC_ROOT}")
        connections.close_all()

        env = self._child_env(host, port, options)
        supervisor = Supervisor(self._specs(host, port, env, listener, web_processes),
                                emit=lambda line: out.write(f"station: {line}"),
                                on_state=PartsRecorder())

        def on_signal(signum: int, _frame: Any) -> None:
            supervisor.request_stop(signal.Signals(signum).name)

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)

        failure = None
        try:
            supervisor.start()
            if not supervisor.stop_reason:
                problems = self._not_answering(options["answer_timeout"])
                self._print_ready(host, port, problems)
                supervisor.run()
        except StationFailed as exc:
            failure = str(exc)
        finally:
            out.write(f"station: stopping ({supervisor.stop_reason or 'failure'})")
            supervisor.stop()
            if listener is not None:
                listener.close()
            lock.close()
        if failure:
            raise CommandError(f"station stopped: {failure}")
        out.write("station: stopped")

    def _print_ready(self, host: str, port: int, problems: dict[str, str]) -> None:
        status = station_status.apply_status({"state": "unclaimed", "owner": None,
                                              "networkMode": "unknown",
                                              "signaling": {"url": "", "connected": 0}})
        state, owner = status["state"], status["owner"]
        hosts = _local_addresses() if host in ("0.0.0.0", "::", "") else [host]  # noqa: S104
        if problems:
            for part, why in problems.items():
                self.stdout.write(self.style.WARNING(
                    f"Station started, but {PART_NAMES.get(part, part)} is not answering: {why}"))
        else:
            self.stdout.write(self.style.SUCCESS(
                f"Station ready: state {state}" + (f", owner {owner}" if owner else "")))
        secure = _tls_files() is not None
        for address in hosts:
            base = f"{'https' if secure else 'http'}://{_bracket(address)}:{port}"
            self.stdout.write(f"  station   {base}/")
            self.stdout.write(f"  admin     {base}/admin/")
            self.stdout.write(f"  api docs  {base}/api/docs/")
            ws = "wss" if secure else "ws"
            self.stdout.write(f"  signaling {ws}://{_bracket(address)}:{port}/ws/signal"
                              f"  peerjs {ws}://{_bracket(address)}:{port}/peerjs/peerjs")


class PartsRecorder:
    """Keeps the supervisor's view of each part in Redis for `/healthz` (meshsite/health.py).
    Every change rewrites the whole record, so the record of a crashed earlier run is replaced
    and one written before the embedded Redis answered is caught up with the next change."""

    def __init__(self) -> None:
        import redis

        self.parts: dict[str, dict[str, Any]] = {}
        self.client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1,
                                           socket_connect_timeout=1)

    def __call__(self, name: str, state: str, pid: int | None, detail: str) -> None:
        self.parts[name] = {"state": state, "pid": pid, "since": time.time(), "detail": detail}
        with contextlib.suppress(Exception):  # Redis not up yet, or the part that died
            health.parts_record(self.parts, client=self.client)


def _tls_files() -> tuple[Path, Path] | None:
    """MESHSITE_TLS_CERT / MESHSITE_TLS_KEY (checked by the settings), or None for HTTP."""
    cert = getattr(settings, "MESHSITE_TLS_CERT", None)
    key = getattr(settings, "MESHSITE_TLS_KEY", None)
    if not cert or not key:
        return None
    return Path(cert).expanduser().resolve(), Path(key).expanduser().resolve()


def daphne_ping_args() -> list[str]:
    """Server-side WebSocket pings, so half-open signaling sockets die within seconds."""
    interval = getattr(settings, "SIGNALING_PING_INTERVAL", 5)
    timeout = getattr(settings, "SIGNALING_PING_TIMEOUT", 5)
    return ["--ping-interval", str(interval), "--ping-timeout", str(timeout)]


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _local_addresses() -> list[str]:
    addresses = ["127.0.0.1"]
    try:
        import psutil

        for entries in psutil.net_if_addrs().values():
            for entry in entries:
                if entry.family == socket.AF_INET and not entry.address.startswith("127."):
                    addresses.append(entry.address)
    except ImportError:
        pass
    return addresses
