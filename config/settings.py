"""DreamCompute settings: one module, every value from the environment.

Unset variables give the embedded defaults that `make run` uses: SQLite in
var/, an in-process Celery worker on kombu's memory transport, an in-memory
channel layer, libvirt's test driver and file storage.
"""

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .env import BASE_DIR, VAR_DIR, env, env_bool, env_list, local_secret_key

# Local state: the SQLite database, generated secret, guest images, storage.
VAR_DIR = VAR_DIR
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = local_secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
PORT = int(env("PORT", "8000"))
# Public base URL put in the Keystone catalog; by default taken from each request.
PUBLIC_URL = env("PUBLIC_URL")
REGION_NAME = env("REGION_NAME", "RegionOne")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_tables2",
    "django_htmx",
    "channels",
    "core",
    "identity",
    "billing",
    "compute",
    "network",
    "storage",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "identity.middleware.CurrentProjectMiddleware",
]
MIDDLEWARE.insert(0, "core.middleware.RejectNulMiddleware")

AUTH_USER_MODEL = "identity.User"
ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
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
                "dashboard.context_processors.navigation",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'dreamcompute.sqlite3'}"),
        conn_max_age=int(env("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Concurrent requests plus worker threads: take the write lock at BEGIN,
    # wait for it instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 4}},
]
PASSWORD_HASHERS = [
    "identity.hashers.Argon2idHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "login"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
TOKEN_TTL_SECONDS = int(env("TOKEN_TTL_SECONDS", str(24 * 3600)))

# --- I18N / static --------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
# Largest request body the API accepts; larger ones get 413 (image uploads stream apart).
DATA_UPLOAD_MAX_MEMORY_SIZE = int(env("DATA_UPLOAD_MAX_MEMORY_SIZE", str(1024 * 1024)))

# --- REST framework -------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "identity.authentication.KeystoneTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["identity.permissions.ProjectRolePermission"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.openstack.parsers.StrictJSONParser"],
    "EXCEPTION_HANDLER": "core.openstack.errors.exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.openstack.negotiation.JSONOnlyNegotiation",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "DreamCompute API",
    "DESCRIPTION": "OpenStack-compatible APIs: Keystone v3, Nova 2.1, Neutron 2.0, Cinder v3, Glance v2.",
    "VERSION": "2.1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs page's JavaScript comes from the sidecar package, not a CDN.
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# --- Redis, Channels, Celery ----------------------------------------------------
REDIS_URL = env("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 defaults to a 5 s socket timeout, which breaks the
            # layer's blocking receive on idle sockets (channels_redis#422).
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": None}],
                       "prefix": env("CHANNELS_PREFIX", "dc")},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "core.layers.ThreadSafeInMemoryChannelLayer"}}
    CELERY_BROKER_URL = "memory://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {"polling_interval": 0.05}
# Run a Celery worker inside the web server process (embedded mode only).
EMBEDDED_WORKER = env_bool("EMBEDDED_WORKER", not REDIS_URL)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = int(env("CELERY_TASK_SOFT_TIME_LIMIT", "300"))
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 30
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Drivers (used by compute, network and storage) -----------------------------
LIBVIRT_URI = env("LIBVIRT_URI", "test:///default")
LIBVIRT_VIRT_TYPE = env("LIBVIRT_VIRT_TYPE")  # None: detect (kvm with vmx/svm, else qemu)
STORAGE_BACKEND = env("STORAGE_BACKEND", "file")
# Where the file backend keeps images and instance disks (must be traversable by libvirt-qemu).
STORAGE_ROOT = env("STORAGE_ROOT", str(VAR_DIR / "storage"))
# Serial console logs and config drives of the guests on this host.
INSTANCES_ROOT = env("INSTANCES_ROOT", str(VAR_DIR / "instances"))
# STORAGE_BACKEND=rbd: the cluster's ceph.conf and the cephx user the cloud
# connects as (client.<CEPH_USER>; its keyring is found through ceph.conf, or
# named here), the pools for images, volumes and instance root disks, and
# the uuid of the libvirt secret that holds the user's key (when cephx is on).
CEPH_CONF = env("CEPH_CONF", "/etc/ceph/ceph.conf")
CEPH_USER = env("CEPH_USER", "dreamcompute")
CEPH_KEYRING = env("CEPH_KEYRING")
CEPH_POOL_IMAGES = env("CEPH_POOL_IMAGES", "images")
CEPH_POOL_VOLUMES = env("CEPH_POOL_VOLUMES", "volumes")
CEPH_POOL_DISKS = env("CEPH_POOL_DISKS", "disks")
CEPH_SECRET_UUID = env("CEPH_SECRET_UUID", "5d5f7b2e-8c3a-4d7e-9a51-0c2f6b1e9d3a")
NETWORK_DRIVER = env("NETWORK_DRIVER", "none")
COMPUTE_HOST = env("COMPUTE_HOST", "localhost")
# The network node: the host whose agent runs routers, DHCP servers and the
# external networks' uplinks (Neutron's L3/DHCP agent host).
NETWORK_NODE = env("NETWORK_NODE", COMPUTE_HOST)
# This host's address for VXLAN between hosts' bridges; empty: networks stay on one host.
NETWORK_TUNNEL_IP = env("NETWORK_TUNNEL_IP", "")
# How external networks reach the world on the network node: "namespace" (a
# stand-in upstream router in a qext-<id> namespace, for one host and tests),
# the name of a physical interface to put on the external bridge, or "none".
NETWORK_EXTERNAL_UPLINK = env("NETWORK_EXTERNAL_UPLINK", "namespace")
NETWORK_STATE_DIR = env("NETWORK_STATE_DIR", str(VAR_DIR / "network"))
# A network namespace that holds this host's bridges, VXLAN and filters in
# place of the real host namespace; empty: the host namespace. Guests' NICs
# are then bare taps that the agent moves in and plugs. Lets several hosts
# share one machine (the test cloud's second hypervisor).
NETWORK_HOST_NETNS = env("NETWORK_HOST_NETNS", "")
COMPUTE_AVAILABILITY_ZONE = env("COMPUTE_AVAILABILITY_ZONE", "nova")
# Over-commit a new host starts with (operators change them per host in the
# admin). Root disks are thin copy-on-write overlays, so disk over-commits too.
CPU_ALLOCATION_RATIO = float(env("CPU_ALLOCATION_RATIO", "16.0"))
RAM_ALLOCATION_RATIO = float(env("RAM_ALLOCATION_RATIO", "1.5"))
DISK_ALLOCATION_RATIO = float(env("DISK_ALLOCATION_RATIO", "16.0"))
# Zone for launches that name none (Nova's default_schedule_zone); unset: any.
DEFAULT_SCHEDULE_ZONE = env("DEFAULT_SCHEDULE_ZONE")
# The tiny guest registered as image tiny-linux by seed_demo.
GUEST_IMAGE = env("GUEST_IMAGE", str(VAR_DIR / "images" / "tiny-linux.qcow2"))
# A host whose worker has not heartbeaten for this long is down (not scheduled to).
HOST_HEARTBEAT_INTERVAL = int(env("HOST_HEARTBEAT_INTERVAL", "10"))
HOST_DOWN_AFTER = int(env("HOST_DOWN_AFTER", "60"))
# Reconcile: how often each host compares libvirt with the database, and how
# long an instance may stay in a task state before it is put in ERROR.
RECONCILE_INTERVAL = int(env("RECONCILE_INTERVAL", "30"))
# How often a network host's agent reconciles everything it should hold (seconds).
NETWORK_RECONCILE_INTERVAL = int(env("NETWORK_RECONCILE_INTERVAL", "60"))
TASK_TIMEOUT = int(env("TASK_TIMEOUT", "600"))
# Guests and disks of ours unknown to the database are removed after this long.
ORPHAN_GRACE = int(env("ORPHAN_GRACE", "300"))
# Seconds a guest gets to power off by ACPI before it is switched off hard.
SHUTDOWN_TIMEOUT = int(env("SHUTDOWN_TIMEOUT", "60"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
