"""Configuration defaults. Every key is read from ``app.config`` as ``XSALE_AMAZON_<KEY>``."""

from __future__ import annotations

from typing import Any

PREFIX = "XSALE_AMAZON_"

DEFAULTS: dict[str, Any] = {
    #: Redis URL of the RQ queue. ``None`` means "no Redis": the host must then pass a
    #: connection to ``init_app(redis=...)`` (the sample app passes fakeredis).
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    #: Name of the RQ queue import jobs go to.
    "QUEUE": "xsale_amazon",
    #: Fernet key(s) encrypting LWA secrets at rest. A string or a list; the first key
    #: encrypts, every key decrypts (key rotation). ``None`` derives a key from ``SECRET_KEY``.
    "ENCRYPTION_KEY": None,
    #: Override of Amazon's regional SP-API base URL (sandbox or a local emulator).
    "SPAPI_ENDPOINT": None,
    #: Override of Amazon's LWA token URL (``https://api.amazon.com/auth/o2/token``).
    "LWA_ENDPOINT": None,
    #: Seconds before the first report-status poll; later polls back off.
    "POLL_INTERVAL": 30.0,
    #: Multiplier applied to the poll delay after every unfinished poll.
    "POLL_BACKOFF": 1.5,
    #: Upper bound of the delay between two polls, in seconds.
    "POLL_MAX_INTERVAL": 900.0,
    #: Give up waiting for Amazon after this many seconds.
    "REPORT_DEADLINE": 24 * 3600,
    #: Reuse a DONE All Listings Report Amazon already holds if it is younger than this
    #: many seconds (0 disables reuse).
    "REPORT_REUSE_WINDOW": 1800,
    #: RQ job timeout of the download + parse + save step, in seconds.
    "JOB_TIMEOUT": 6 * 3600,
    #: Rows sent to the database per staging batch.
    "BATCH_SIZE": 20000,
    #: A running import whose heartbeat is older than this many seconds is considered dead.
    "HEARTBEAT_TIMEOUT": 300,
    #: Retries of throttled (429) or failing (5xx) SP-API calls inside one step.
    "MAX_RETRIES": 6,
    #: HTTP timeout of SP-API calls and of the report download, in seconds.
    "HTTP_TIMEOUT": 120.0,
    #: Hosts (and their subdomains) the report document may be downloaded from.
    "DOWNLOAD_HOSTS": ("amazonaws.com", "amazon.com"),
    #: How many invalid report lines are kept (with line number and reason) on the run.
    "INVALID_LINES_KEPT": 50,
    #: Register the admin views in the host's Flask-Admin (turn off to place them yourself).
    "REGISTER_ADMIN": True,
    #: Flask-Admin menu category of the plugin's views.
    "ADMIN_CATEGORY": "Amazon",
    #: Host product attributes holding the SKU/code, EAN, name and (optionally) ASIN.
    "PRODUCT_SKU_ATTR": "sku",
    "PRODUCT_EAN_ATTR": "ean",
    "PRODUCT_NAME_ATTR": "name",
    "PRODUCT_ASIN_ATTR": None,
    #: Flask-Admin endpoint of the host's product view, used to link to linked products.
    "PRODUCT_ADMIN_ENDPOINT": None,
    #: Page size of the offers list.
    "PAGE_SIZE": 50,
}


def apply_defaults(config: dict[str, Any]) -> None:
    for key, value in DEFAULTS.items():
        config.setdefault(PREFIX + key, value)
