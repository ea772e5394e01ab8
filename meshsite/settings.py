"""Meshsite settings: one module, every knob an environment variable.

Each variable is read through the typed helpers in `meshsite.env`, which raise
`ImproperlyConfigured` naming the variable and what it accepts. The README lists them all.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from meshsite.embedded_redis import socket_path_for
from meshsite.env import (
    env_bool,
    env_choice,
    env_file_or_str,
    env_int,
    env_list,
    env_path,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# --- station basics -------------------------------------------------------------------------

DATA_DIR = env_path("MESHSITE_DATA_DIR", Path.home() / ".meshsite")
try:
    DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
except OSError as exc:
    raise ImproperlyConfigured(
        f"MESHSITE_DATA_DIR={str(DATA_DIR)!r} cannot be created: {exc}. Choose a writable folder."
    ) from exc

MESHSITE_PORT = env_int("MESHSITE_PORT", 8080, minimum=1, maximum=65535)
MESHSITE_HOST = env_str("MESHSITE_HOST", "0.0.0.0")  # noqa: S104 - a station serves its LAN
# daphne processes accepting on the station's one listening socket (`runstation`): a flood that
# saturates one leaves the others answering. With TLS the station runs one (meshsite/web.py).
MESHSITE_WEB_PROCESSES = env_int("MESHSITE_WEB_PROCESSES", 2, minimum=1, maximum=16)
MESHSITE_LOG_LEVEL = env_choice("MESHSITE_LOG_LEVEL", "info",
                                ["debug", "info", "warning", "error", "critical"])
MESHSITE_MDNS = env_bool("MESHSITE_MDNS", True)
MESHSITE_MDNS_INTERFACES = env_list("MESHSITE_MDNS_INTERFACES", [])
MESHSITE_PUBLIC_URL = env_url("MESHSITE_PUBLIC_URL", ["http", "https"], None)

DEBUG = env_bool("MESHSITE_DEBUG", False)


def _secret_key() -> str:
    """From DJANGO_SECRET_KEY(_FILE), else generated once into the data dir with mode 0600."""
    configured = env_file_or_str("DJANGO_SECRET_KEY")
    if configured:
        return configured
    path = DATA_DIR / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    key = secrets.token_urlsafe(50)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


SECRET_KEY = _secret_key()

# Stations answer on their LAN address, on `<name>.local` and, as the proxy for `*.radio`, on
# any `<callsign>.radio` host: "*" by default, narrow it where the station has a fixed name.
ALLOWED_HOSTS = env_list("MESHSITE_ALLOWED_HOSTS", ["*"])
CSRF_TRUSTED_ORIGINS = env_list("MESHSITE_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "whitenoise.runserver_nostatic",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_celery_beat",
    "qr_code",
    "meshsite",
    "certificates",
    "signaling",
    "mesh",
    "catalog",
]

MIDDLEWARE = [
    "meshsite.middleware.AccessLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "meshsite.middleware.StaticFilesMiddleware",  # WhiteNoise, kept off the async path
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # http://CALLSIGN.radio/... (Host or absolute-form proxy requests) -> /c/CALLSIGN/...
    "catalog.middleware.RadioHostMiddleware",
]

ROOT_URLCONF = "meshsite.urls"
ASGI_APPLICATION = "meshsite.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------

DATABASE_URL = env_url("DATABASE_URL", ["sqlite", "postgres", "postgresql", "pgsql"], None)
if DATABASE_URL:
    try:
        # No persistent connections on a server database: daphne runs each request's sync
        # code in a thread of its own, so a kept connection outlives its request and the
        # server's connection slots run out ("too many clients") under a busy mesh.
        DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL could not be parsed: {exc}") from exc
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "db.sqlite3",
            "OPTIONS": {
                # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at
                # BEGIN, so two writers queue on busy_timeout instead of failing mid-transaction.
                "init_command": (
                    "PRAGMA journal_mode=WAL;"
                    "PRAGMA synchronous=NORMAL;"
                    "PRAGMA busy_timeout=10000;"
                    "PRAGMA foreign_keys=ON;"
                ),
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            # Keep connections between requests: opening one (and its PRAGMAs) per request
            # cost 10-15% of the time serving content (bench/catalog_sync --serve).
            "CONN_MAX_AGE": 60,
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("TEST", {})["NAME"] = ""  # in-memory for tests
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, Celery broker, counters, presence -------------------------------

REDIS_URL = env_url("REDIS_URL", ["redis", "rediss", "unix"], None)
REDIS_EMBEDDED = REDIS_URL is None
REDIS_SOCKET = socket_path_for(DATA_DIR) if REDIS_EMBEDDED else None
if REDIS_EMBEDDED:
    REDIS_URL = f"unix://{REDIS_SOCKET}"

if REDIS_URL.startswith("unix://"):
    CELERY_BROKER_URL = "redis+socket://" + REDIS_URL.removeprefix("unix://")
else:
    CELERY_BROKER_URL = REDIS_URL

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # socket_timeout above channels-redis's 5 s blocking pop: redis-py 8 gives unix
            # socket connections a 5 s read timeout by default, which failed every idle
            # receive and so closed every consumer that heard nothing for 5 s.
            "hosts": [{"address": REDIS_URL, "max_connections": 1000, "socket_timeout": 30}],
            # One process's channels share a Redis key: the default of 100 pending messages
            # makes a busy process raise ChannelFull (specs/signaling-performance.md).
            "capacity": 10000,
            "expiry": 30,
        },
    }
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "meshsite",
    }
}

# --- Celery ---------------------------------------------------------------------------------

CELERY_RESULT_BACKEND = CELERY_BROKER_URL
CELERY_TASK_ALWAYS_EAGER = env_bool("MESHSITE_CELERY_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = 3600
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# Seconds between runs of each periodic job; the apps add theirs below. Operators change them
# with these variables or, live, in the admin (django-celery-beat's periodic tasks).
HEARTBEAT_INTERVAL = env_int("MESHSITE_HEARTBEAT_INTERVAL", 10, minimum=1, maximum=3600)
HEARTBEAT_MAX_AGE = env_int("MESHSITE_HEARTBEAT_MAX_AGE", 60, minimum=5, maximum=86400)
CELERY_BEAT_SCHEDULE = {
    "station-heartbeat": {"task": "meshsite.tasks.heartbeat", "schedule": HEARTBEAT_INTERVAL},
}

# --- static files, API ----------------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the finders too, so a station whose collectstatic has not run yet (tests,
# a first start) still has a styled admin.
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = DATA_DIR / "media"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "meshsite.api_errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Meshsite station API",
    "DESCRIPTION": "The API of one Meshsite station: status, trust, peers, content.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- logging --------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"kv": {"()": "meshsite.logfmt.KeyValueFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "kv"}},
    "root": {"handlers": ["stderr"], "level": MESHSITE_LOG_LEVEL.upper()},
    "loggers": {
        "django": {"level": "INFO" if MESHSITE_LOG_LEVEL == "debug" else "WARNING"},
        "daphne": {"level": "WARNING"},
        "asyncio": {"level": "WARNING"},
        # Per-task chatter (received / succeeded / beat sending due task, every few seconds)
        # shows only at debug level, so INFO keeps the station's own events readable.
        **{name: {"level": "DEBUG" if MESHSITE_LOG_LEVEL == "debug" else "WARNING"}
           for name in ("celery.app.trace", "celery.worker.strategy", "celery.beat")},
    },
}

# Each app below owns its section. Keep knobs in the app's own section, read with the helpers.

# --- certificates ---------------------------------------------------------------------------

# End certificates that expired are refused unless this is on (then accepted and flagged expired).
MESHSITE_ALLOW_EXPIRED_CERTIFICATES = env_bool("MESHSITE_ALLOW_EXPIRED_CERTIFICATES", False)
# PEM files whose certificates are trust roots besides those in the database (comma-separated).
MESHSITE_TRUST_ROOT_FILES = env_list("MESHSITE_TRUST_ROOT_FILES", [])
# Seconds a claim / proof nonce stays usable.
MESHSITE_NONCE_TTL = env_int("MESHSITE_NONCE_TTL", 300, minimum=10, maximum=3600)
# The station's Ed25519 key (raw 32 bytes, mode 0600) and the CA key (PKCS#8 PEM, mode 0600).
MESHSITE_STATION_KEY_FILE = env_path("MESHSITE_STATION_KEY_FILE", DATA_DIR / "station_ed25519.key")
MESHSITE_CA_KEY_FILE = env_path("MESHSITE_CA_KEY_FILE", DATA_DIR / "ca_key.pem")
# Certificates issued by this station's CA: validity in days, and at most LIMIT per WINDOW seconds.
MESHSITE_CA_VALIDITY_DAYS = env_int("MESHSITE_CA_VALIDITY_DAYS", 365, minimum=1, maximum=3650)
MESHSITE_CA_ISSUE_LIMIT = env_int("MESHSITE_CA_ISSUE_LIMIT", 10, minimum=1, maximum=100000)
MESHSITE_CA_ISSUE_WINDOW = env_int("MESHSITE_CA_ISSUE_WINDOW", 3600, minimum=1, maximum=86400)

# --- signaling ------------------------------------------------------------------------------
# docs/signaling.md describes every knob. Times in seconds.
from meshsite.env import env_float  # noqa: E402 - kept inside this app's section

SIGNALING_PEERJS_PATH = "/" + (env_str("MESHSITE_PEERJS_PATH", "/peerjs/") or "").strip("/") + "/"
SIGNALING_PEERJS_PATH = SIGNALING_PEERJS_PATH.replace("//", "/")
if not all(part.replace("-", "").replace("_", "").replace(".", "").isalnum()
           for part in SIGNALING_PEERJS_PATH.strip("/").split("/") if part):
    raise ImproperlyConfigured(
        f"MESHSITE_PEERJS_PATH={SIGNALING_PEERJS_PATH!r} is not valid: expected a URL path of "
        "letters, digits, '-', '_' and '.' segments, such as /peerjs/.")
SIGNALING_PEERJS_KEY = env_str("MESHSITE_PEERJS_KEY", "peerjs")
if not SIGNALING_PEERJS_KEY.replace("-", "").replace("_", "").isalnum():
    raise ImproperlyConfigured(
        f"MESHSITE_PEERJS_KEY={SIGNALING_PEERJS_KEY!r} is not valid: expected letters, digits, "
        "'-' and '_'.")
SIGNALING_PEERJS_EXPIRE_TIMEOUT = env_float("MESHSITE_PEERJS_EXPIRE_TIMEOUT", 5.0,
                                            minimum=0.1, maximum=3600)
SIGNALING_PEERJS_CLEANUP_INTERVAL = env_float("MESHSITE_PEERJS_CLEANUP_INTERVAL", 1.0,
                                              minimum=0.05, maximum=60)
SIGNALING_PEERJS_ALIVE_TIMEOUT = env_float("MESHSITE_PEERJS_ALIVE_TIMEOUT", 60.0,
                                           minimum=0.5, maximum=86400)
SIGNALING_PEERJS_CONCURRENT_LIMIT = env_int("MESHSITE_PEERJS_CONCURRENT_LIMIT", 5000,
                                            minimum=1, maximum=1_000_000)
SIGNALING_PEERJS_ALLOW_DISCOVERY = env_bool("MESHSITE_PEERJS_ALLOW_DISCOVERY", False)
SIGNALING_PEERJS_CORS_ORIGINS = env_list("MESHSITE_PEERJS_CORS_ORIGINS", [])
SIGNALING_PEERJS_QUEUE_PER_ID = env_int("MESHSITE_PEERJS_QUEUE_PER_ID", 100,
                                        minimum=0, maximum=100_000)
SIGNALING_PEERJS_QUEUE_TOTAL_BYTES = env_int("MESHSITE_PEERJS_QUEUE_TOTAL_BYTES",
                                             16 * 1024 * 1024, minimum=0, maximum=2**34)
SIGNALING_PEERJS_ID_BINDING = env_choice("MESHSITE_PEERJS_ID_BINDING", "off",
                                         ["off", "callsigns", "licensed"])

SIGNALING_MAX_MESSAGE_BYTES = env_int("MESHSITE_SIGNALING_MAX_MESSAGE_BYTES", 65536,
                                      minimum=1024, maximum=1024 * 1024)
SIGNALING_RATE = env_float("MESHSITE_SIGNALING_RATE", 50.0, minimum=0, maximum=1_000_000)
SIGNALING_BURST = env_int("MESHSITE_SIGNALING_BURST", 200, minimum=1, maximum=1_000_000)
SIGNALING_MAX_ICE_CANDIDATES = env_int("MESHSITE_SIGNALING_MAX_ICE_CANDIDATES", 50,
                                       minimum=0, maximum=100_000)
SIGNALING_CONNECT_RATE = env_int("MESHSITE_SIGNALING_CONNECT_RATE", 120,
                                 minimum=0, maximum=1_000_000)
SIGNALING_MAX_WARNINGS = env_int("MESHSITE_SIGNALING_MAX_WARNINGS", 10, minimum=1,
                                 maximum=1_000_000)
SIGNALING_MAX_CLIENTS = env_int("MESHSITE_SIGNALING_MAX_CLIENTS", 5000, minimum=1,
                                maximum=1_000_000)
SIGNALING_DEFAULT_ROOM = env_str("MESHSITE_SIGNALING_DEFAULT_ROOM", "lobby")
SIGNALING_ROOM_CAPACITY = env_int("MESHSITE_SIGNALING_ROOM_CAPACITY", 1000, minimum=0,
                                  maximum=1_000_000)
SIGNALING_IDLE_TIMEOUT = env_float("MESHSITE_SIGNALING_IDLE_TIMEOUT", 30.0, minimum=0,
                                   maximum=86400)
SIGNALING_PRESENCE_REFRESH = env_float("MESHSITE_SIGNALING_PRESENCE_REFRESH", 1.0,
                                       minimum=0.05, maximum=60)
SIGNALING_PRESENCE_TTL = env_float("MESHSITE_SIGNALING_PRESENCE_TTL", 5.0, minimum=0.2,
                                   maximum=600)
if SIGNALING_PRESENCE_TTL <= 2 * SIGNALING_PRESENCE_REFRESH:
    raise ImproperlyConfigured(
        "MESHSITE_SIGNALING_PRESENCE_TTL must be more than twice "
        "MESHSITE_SIGNALING_PRESENCE_REFRESH, or live processes would be taken for dead.")
# WebSocket ping/pong from the server (daphne's --ping-interval / --ping-timeout): whoever starts
# daphne (runstation, the test harness) passes these, so half-open sockets die within seconds.
SIGNALING_PING_INTERVAL = env_int("MESHSITE_SIGNALING_PING_INTERVAL", 5, minimum=1,
                                  maximum=3600)
SIGNALING_PING_TIMEOUT = env_int("MESHSITE_SIGNALING_PING_TIMEOUT", 5, minimum=1, maximum=3600)
SIGNALING_SESSION_RETENTION = env_int("MESHSITE_SIGNALING_SESSION_RETENTION", 86400,
                                      minimum=60, maximum=365 * 86400)
SIGNALING_PRUNE_INTERVAL = env_int("MESHSITE_SIGNALING_PRUNE_INTERVAL", 3600, minimum=10,
                                   maximum=86400)
CELERY_BEAT_SCHEDULE["signaling-prune-sessions"] = {
    "task": "signaling.tasks.prune_sessions",
    "schedule": SIGNALING_PRUNE_INTERVAL,
}

# --- the mailbox (signaling app; docs/mailbox.md) ---
MAILBOX_MESSAGE_TTL = env_int("MESHSITE_MAILBOX_MESSAGE_TTL", 30 * 86400, minimum=60,
                              maximum=365 * 86400)
MAILBOX_QUEUE_CAP = env_int("MESHSITE_MAILBOX_QUEUE_CAP", 1000, minimum=1, maximum=1_000_000)
MAILBOX_MAX_DEVICES = env_int("MESHSITE_MAILBOX_MAX_DEVICES", 10, minimum=1, maximum=100)
MAILBOX_LOW_PREKEYS = env_int("MESHSITE_MAILBOX_LOW_PREKEYS", 10, minimum=0, maximum=100)
MAILBOX_SEND_RATE = env_int("MESHSITE_MAILBOX_SEND_RATE", 120, minimum=0, maximum=1_000_000)
MAILBOX_BUNDLE_RATE = env_int("MESHSITE_MAILBOX_BUNDLE_RATE", 30, minimum=0,
                              maximum=1_000_000)
MAILBOX_BUNDLE_TARGET_RATE = env_int("MESHSITE_MAILBOX_BUNDLE_TARGET_RATE", 120, minimum=0,
                                     maximum=1_000_000)
MAILBOX_REGISTER_RATE = env_int("MESHSITE_MAILBOX_REGISTER_RATE", 20, minimum=0,
                                maximum=1_000_000)
MAILBOX_RATE_WINDOW = env_int("MESHSITE_MAILBOX_RATE_WINDOW", 60, minimum=1, maximum=86400)
MAILBOX_PRUNE_INTERVAL = env_int("MESHSITE_MAILBOX_PRUNE_INTERVAL", 3600, minimum=10,
                                 maximum=86400)
MAILBOX_FORWARD_INTERVAL = env_int("MESHSITE_MAILBOX_FORWARD_INTERVAL", 10, minimum=1,
                                   maximum=3600)
CELERY_BEAT_SCHEDULE["mailbox-prune"] = {
    "task": "signaling.tasks.prune_messages", "schedule": MAILBOX_PRUNE_INTERVAL}
CELERY_BEAT_SCHEDULE["mailbox-forward"] = {
    "task": "signaling.tasks.forward_mailbox", "schedule": MAILBOX_FORWARD_INTERVAL}

# --- mesh -----------------------------------------------------------------------------------

from meshsite.env import env_float as _mesh_env_float  # noqa: E402 - mesh section keeps its imports

# Liveness: meshd probes every peer each PROBE_INTERVAL seconds; a LAN peer silent for
# SUSPECT_AFTER seconds is suspect, for UNREACHABLE_AFTER unreachable (RF links scale by minutes).
MESH_PROBE_INTERVAL = _mesh_env_float("MESHSITE_MESH_PROBE_INTERVAL", 1.0, minimum=0.1, maximum=600)
MESH_PROBE_TIMEOUT = _mesh_env_float("MESHSITE_MESH_PROBE_TIMEOUT", 1.5, minimum=0.1, maximum=60)
MESH_SUSPECT_AFTER = _mesh_env_float("MESHSITE_MESH_SUSPECT_AFTER", 2.5, minimum=0.2, maximum=86400)
MESH_UNREACHABLE_AFTER = _mesh_env_float("MESHSITE_MESH_UNREACHABLE_AFTER", 8.0, minimum=0.5,
                                         maximum=86400)
MESH_RF_SUSPECT_AFTER = _mesh_env_float("MESHSITE_MESH_RF_SUSPECT_AFTER", 900, minimum=1)
MESH_RF_UNREACHABLE_AFTER = _mesh_env_float("MESHSITE_MESH_RF_UNREACHABLE_AFTER", 2700, minimum=1)
if MESH_UNREACHABLE_AFTER <= MESH_SUSPECT_AFTER:
    raise ImproperlyConfigured(
        "MESHSITE_MESH_UNREACHABLE_AFTER must be larger than MESHSITE_MESH_SUSPECT_AFTER "
        f"({MESH_UNREACHABLE_AFTER} <= {MESH_SUSPECT_AFTER})."
    )
# Outgoing /ws/coordinate links reconnect with exponential backoff between these bounds.
MESH_RECONNECT_MIN = _mesh_env_float("MESHSITE_MESH_RECONNECT_MIN", 0.5, minimum=0.05, maximum=60)
MESH_RECONNECT_MAX = _mesh_env_float("MESHSITE_MESH_RECONNECT_MAX", 30.0, minimum=0.1, maximum=3600)
# Signed messages older or newer than this many seconds are refused (replay window).
# Periodic routing updates on a LAN/IP link (Babel's 16 s); routes expire after 3.5 missed.
MESH_ROUTE_INTERVAL = _mesh_env_float("MESHSITE_MESH_ROUTE_INTERVAL", 16.0, minimum=0.5,
                                      maximum=3600)
# A FORWARD request's hop budget when it leaves its origin (at most the hop limit, 10).
MESH_FORWARD_TTL = env_int("MESHSITE_MESH_FORWARD_TTL", 8, minimum=1, maximum=10)
# Seconds one hop of a forwarded request waits for the next (grows with the hops left).
MESH_FORWARD_TIMEOUT = _mesh_env_float("MESHSITE_MESH_FORWARD_TIMEOUT", 3.0, minimum=0.5,
                                       maximum=600)
# Share of each LAN/IP link's measured bandwidth that sync (trust, catalog) may use.
MESH_SYNC_SHARE = _mesh_env_float("MESHSITE_MESH_SYNC_SHARE", 0.10, minimum=0.001, maximum=1.0)
MESH_MESSAGE_WINDOW = env_int("MESHSITE_MESH_MESSAGE_WINDOW", 120, minimum=5, maximum=86400)
MESH_HOP_LIMIT = env_int("MESHSITE_MESH_HOP_LIMIT", 10, minimum=1, maximum=32)
MESH_MAX_LEARNT_PEERS = env_int("MESHSITE_MESH_MAX_LEARNT_PEERS", 200, minimum=0, maximum=10000)
# Open links to peers learnt from other peers' lists too (off: only mDNS and manual peers).
MESH_DIAL_LEARNT_PEERS = env_bool("MESHSITE_MESH_DIAL_LEARNT_PEERS", True)
MESH_PRUNE_AFTER = env_int("MESHSITE_MESH_PRUNE_AFTER", 7 * 86400, minimum=60)
MESH_MDNS_TTL = env_int("MESHSITE_MESH_MDNS_TTL", 15, minimum=1, maximum=4500)
# The operator's probe targets for the network mode: URLs (http/https) or host:port. No public
# default: with none configured the station probes nothing and reports `offline` when the host
# has no default route, else `unknown` with a hint (mesh.services.connectivity_check).
CONNECTIVITY_TARGETS = env_list("MESHSITE_CONNECTIVITY_TARGETS", [])
CONNECTIVITY_TIMEOUT = _mesh_env_float("MESHSITE_CONNECTIVITY_TIMEOUT", 3.0, minimum=0.1,
                                       maximum=60)
# Consecutive failed checks before the mode turns offline (one success turns it online again).
CONNECTIVITY_FAILURES = env_int("MESHSITE_CONNECTIVITY_FAILURES", 2, minimum=1, maximum=100)

MESH_GOSSIP_INTERVAL = env_int("MESHSITE_MESH_GOSSIP_INTERVAL", 30, minimum=1, maximum=86400)
MESH_SWEEP_INTERVAL = env_int("MESHSITE_MESH_SWEEP_INTERVAL", 5, minimum=1, maximum=86400)
MESH_PRUNE_INTERVAL = env_int("MESHSITE_MESH_PRUNE_INTERVAL", 3600, minimum=10, maximum=604800)
MESH_MDNS_REFRESH_INTERVAL = env_int("MESHSITE_MESH_MDNS_REFRESH_INTERVAL", 60, minimum=5,
                                     maximum=86400)
CONNECTIVITY_INTERVAL = env_int("MESHSITE_CONNECTIVITY_INTERVAL", 5, minimum=1, maximum=3600)
CELERY_BEAT_SCHEDULE["mesh-gossip"] = {
    "task": "mesh.tasks.gossip_round", "schedule": MESH_GOSSIP_INTERVAL}
CELERY_BEAT_SCHEDULE["mesh-membership-sweep"] = {
    "task": "mesh.tasks.membership_sweep", "schedule": MESH_SWEEP_INTERVAL}
CELERY_BEAT_SCHEDULE["mesh-prune"] = {"task": "mesh.tasks.prune", "schedule": MESH_PRUNE_INTERVAL}
CELERY_BEAT_SCHEDULE["mesh-mdns-refresh"] = {
    "task": "mesh.tasks.mdns_refresh", "schedule": MESH_MDNS_REFRESH_INTERVAL}
CELERY_BEAT_SCHEDULE["mesh-connectivity"] = {
    "task": "mesh.tasks.connectivity_check", "schedule": CONNECTIVITY_INTERVAL}

# --- radio (mesh over AX.25 through a KISS TNC; docs/radio.md) -------------------------------

from mesh.tnc import TncError as _TncError  # noqa: E402 - pure module, no Django imports
from mesh.tnc import parse_kiss_url as _parse_kiss_url  # noqa: E402

# The TNC: tcp://HOST:PORT or serial:///dev/DEVICE?baud=N (`runstation --kiss`); unset: no radio.
RF_KISS = env_str("MESHSITE_RF_KISS", None)
if RF_KISS is not None:
    try:
        RF_KISS = str(_parse_kiss_url(RF_KISS))
    except _TncError as exc:
        raise ImproperlyConfigured(f"MESHSITE_RF_KISS is not valid: {exc}.") from exc
# The AX.25 source is the owner's callsign with this SSID.
RF_SSID = env_int("MESHSITE_RF_SSID", 10, minimum=0, maximum=15)
# The channel's bit rate, for air-time accounting (1200 AFSK, 9600 G3RUH, VARA up to 7536).
RF_BITRATE = env_int("MESHSITE_RF_BITRATE", 1200, minimum=50, maximum=1_000_000)
# Share of air time that beacons, routing and sync may use (operator and client requests first).
RF_AIRTIME_SHARE = _mesh_env_float("MESHSITE_RF_AIRTIME_SHARE", 0.10, minimum=0.001, maximum=1.0)
# Seconds between identifications: Part 97.119 asks for at least every 10 minutes.
RF_ID_INTERVAL = env_int("MESHSITE_RF_ID_INTERVAL", 600, minimum=10, maximum=600)
# Seconds between periodic routing updates to each RF neighbour (triggered ones go at once).
RF_ROUTE_INTERVAL = _mesh_env_float("MESHSITE_RF_ROUTE_INTERVAL", 300, minimum=10, maximum=3600)
# Least seconds between two catalog/trust syncs with one RF neighbour (a beacon whose catalog
# digest differs from ours starts one).
RF_SYNC_INTERVAL = _mesh_env_float("MESHSITE_RF_SYNC_INTERVAL", 300, minimum=10, maximum=86400)

# --- catalog --------------------------------------------------------------------------------

# Bodies of content entries: an entry may be at most CATALOG_MAX_ENTRY_SIZE bytes (the design's
# ceiling is 100 MB); cached bodies (priority 3, and 2 once demand fades) are evicted least
# recently used once all bodies together pass CATALOG_STORAGE_BUDGET bytes. Own content and
# priority 1 are never evicted.
CATALOG_MAX_ENTRY_SIZE = env_int("MESHSITE_CATALOG_MAX_ENTRY_SIZE", 100 * 1024 * 1024, minimum=1,
                                 maximum=100 * 1024 * 1024)
CATALOG_STORAGE_BUDGET = env_int("MESHSITE_CATALOG_STORAGE_BUDGET", 1024 * 1024 * 1024,
                                 minimum=0)
CATALOG_BLOB_DIR = DATA_DIR / "blobs"
# Remote HLC timestamps more than this many seconds ahead of our clock are clamped and logged.
CATALOG_MAX_CLOCK_SKEW = env_int("MESHSITE_CATALOG_MAX_CLOCK_SKEW", 300, minimum=0,
                                 maximum=86400)
# Milliseconds added to this station's wall clock for content timestamps: corrects a clock known
# to be wrong (and lets tests give stations skewed clocks).
CATALOG_CLOCK_OFFSET_MS = env_int("MESHSITE_CATALOG_CLOCK_OFFSET_MS", 0,
                                  minimum=-86400 * 1000 * 365, maximum=86400 * 1000 * 365)
# Catalog reconciliation with each linked peer every CATALOG_SYNC_INTERVAL seconds, in messages
# of at most CATALOG_SYNC_MESSAGE_SIZE bytes.
CATALOG_SYNC_INTERVAL = env_int("MESHSITE_CATALOG_SYNC_INTERVAL", 30, minimum=1, maximum=86400)
CATALOG_SYNC_MESSAGE_SIZE = env_int("MESHSITE_CATALOG_SYNC_MESSAGE_SIZE", 4096, minimum=256,
                                    maximum=1024 * 1024)
# Priority 2 bodies are replicated once this many requests for them have been seen.
CATALOG_DEMAND_THRESHOLD = env_int("MESHSITE_CATALOG_DEMAND_THRESHOLD", 3, minimum=1,
                                   maximum=1_000_000)
# Seconds a body fetch from a peer may take before the next holder is tried.
CATALOG_FETCH_TIMEOUT = env_int("MESHSITE_CATALOG_FETCH_TIMEOUT", 30, minimum=1, maximum=3600)
# Releases and the package index (/simple/): a download token (from a license proof) lasts
# DOWNLOAD_TOKEN_TTL seconds; one address gets at most DOWNLOAD_TOKEN_RATE nonces and tokens a
# minute, one token at most INDEX_RATE index and file requests a minute.
DOWNLOAD_TOKEN_TTL = env_int("MESHSITE_DOWNLOAD_TOKEN_TTL", 86400, minimum=60, maximum=30 * 86400)
DOWNLOAD_TOKEN_RATE = env_int("MESHSITE_DOWNLOAD_TOKEN_RATE", 10, minimum=1, maximum=100_000)
INDEX_RATE = env_int("MESHSITE_INDEX_RATE", 600, minimum=1, maximum=1_000_000)
CELERY_BEAT_SCHEDULE["catalog-sync"] = {
    "task": "catalog.tasks.sync_round", "schedule": CATALOG_SYNC_INTERVAL}
CELERY_BEAT_SCHEDULE["catalog-prune"] = {"task": "catalog.tasks.prune", "schedule": 3600}

# --- PWA ------------------------------------------------------------------------------------

# Seconds between the server-side checks that push a changed snapshot to `/ws/live` (the PWA);
# network-mode changes are pushed at once.
MESHSITE_LIVE_INTERVAL = _mesh_env_float("MESHSITE_LIVE_INTERVAL", 2.0, minimum=0.2, maximum=600)
LOGIN_URL = "/signin"
# Optional HTTPS: a PEM certificate (chain after it) and its unencrypted PEM key. With both set,
# runstation serves HTTPS (and wss://) instead of HTTP on the same port.
MESHSITE_TLS_CERT = env_str("MESHSITE_TLS_CERT", "") or None
MESHSITE_TLS_KEY = env_str("MESHSITE_TLS_KEY", "") or None
if bool(MESHSITE_TLS_CERT) != bool(MESHSITE_TLS_KEY):
    raise ImproperlyConfigured(
        "MESHSITE_TLS_CERT and MESHSITE_TLS_KEY go together: set both (the certificate and its "
        "key, PEM files) for HTTPS, or neither for HTTP.")
if MESHSITE_TLS_CERT and MESHSITE_TLS_KEY:
    from meshsite.tls import TlsConfigError, tls_files_check

    try:
        tls_files_check(Path(MESHSITE_TLS_CERT).expanduser().resolve(),
                        Path(MESHSITE_TLS_KEY).expanduser().resolve())
    except TlsConfigError as exc:
        raise ImproperlyConfigured(str(exc)) from exc
