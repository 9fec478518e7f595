"""The plugin's configuration: ``XSALE_AMAZON_*`` keys, read and validated once in ``init_app``.

Every key is read from ``app.config`` as ``XSALE_AMAZON_<KEY>``; the field of :class:`Settings`
is the key in lower case (``XSALE_AMAZON_POLL_INTERVAL`` → ``settings.poll_interval``). A value
of the wrong type or out of range stops the app at start with a message naming the key, instead
of failing hours later inside a worker.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, NoReturn

PREFIX = "XSALE_AMAZON_"

#: Default of ``XSALE_AMAZON_SUGGEST_SKU_AFFIXES``: patterns the mapping assistant strips from
#: SKUs before comparing them (see :mod:`xsale_amazon_plugin.suggest.text`).
DEFAULT_SKU_AFFIXES: tuple[str, ...] = (
    # Suffixes sellers add to an ERP code for the Amazon channel, condition or packaging.
    r"[-_/. ]?(?:fba|fbm|afn|mfn|amz|amazon|prime|new|neu|nowy|used|refurb)$",
    # Single letters only after a separator ("/B", "-N"): "DR2010B" is a code of its own.
    r"[-_/. ](?:b|n|a|x)$",
    # Prefixes with the same meaning.
    r"^(?:fba|fbm|amz|amazon|az)[-_/. ]",
)


class SettingsError(ValueError):
    """A configuration value the plugin cannot use; the message names the key and the fix.

    .. versionadded:: 0.2.0
    """


@dataclass(frozen=True)
class Settings:
    """Typed, validated ``XSALE_AMAZON_*`` configuration of one app.

    Build it with :meth:`from_config`; derive a changed copy with :meth:`replace` (both validate).

    .. versionadded:: 0.2.0
    """

    #: Redis URL of the RQ queue. ``None`` means "no Redis": the host must then pass a
    #: connection to ``init_app(redis=...)`` (the sample app passes fakeredis).
    redis_url: str | None = "redis://127.0.0.1:6379/0"
    #: Name of the RQ queue import jobs go to.
    queue: str = "xsale_amazon"
    #: Fernet key(s) encrypting LWA secrets at rest: a string (comma-separated for several) or
    #: a list. The first key encrypts, every key decrypts (rotation). ``None`` derives a key
    #: from ``SECRET_KEY``.
    encryption_key: str | tuple[str, ...] | None = None
    #: Override of Amazon's regional SP-API base URL (sandbox or a local emulator).
    spapi_endpoint: str | None = None
    #: Override of Amazon's LWA token URL (``https://api.amazon.com/auth/o2/token``).
    lwa_endpoint: str | None = None
    #: Seconds before the first report-status poll; later polls back off.
    poll_interval: float = 30.0
    #: Multiplier applied to the poll delay after every unfinished poll (≥ 1).
    poll_backoff: float = 1.5
    #: Upper bound of the delay between two polls, in seconds.
    poll_max_interval: float = 900.0
    #: Give up waiting for Amazon after this many seconds.
    report_deadline: float = 24 * 3600.0
    #: Reuse a DONE All Listings Report Amazon already holds if it is younger than this many
    #: seconds (0 disables reuse).
    report_reuse_window: float = 1800.0
    #: RQ job timeout of one step (the download + parse + save step is the long one), seconds.
    job_timeout: int = 6 * 3600
    #: Rows sent to the database per staging batch.
    batch_size: int = 20000
    #: A running import whose heartbeat is older than this many seconds is considered dead.
    heartbeat_timeout: float = 300.0
    #: Retries of throttled (429) or failing (5xx) SP-API calls inside one step.
    max_retries: int = 6
    #: HTTP timeout of SP-API calls and of the report download, in seconds.
    http_timeout: float = 120.0
    #: Hosts (and their subdomains) the report document may be downloaded from.
    download_hosts: tuple[str, ...] = ("amazonaws.com", "amazon.com")
    #: How many invalid report lines are kept (with line number and reason) on the run.
    invalid_lines_kept: int = 50
    #: An import that would soft-remove more than this share (0-1) of the integration's live
    #: offers stops before the apply and waits for an operator to confirm or discard it.
    removal_guard: float = 0.2
    #: A report with more than this share (0-1) of invalid lines, or no valid line, fails.
    max_invalid_share: float = 0.05
    #: A held import not confirmed within this many seconds is discarded.
    hold_expiry: float = 7 * 24 * 3600.0
    #: Register the admin views in the host's Flask-Admin (turn off to place them yourself).
    register_admin: bool = True
    #: Flask-Admin menu category of the plugin's views.
    admin_category: str = "Amazon"
    #: Host product attribute holding the SKU / code.
    product_sku_attr: str | None = "sku"
    #: Host product attribute holding the EAN.
    product_ean_attr: str | None = "ean"
    #: Host product attribute holding the name.
    product_name_attr: str | None = "name"
    #: Host product attribute holding an ASIN, if the host keeps one.
    product_asin_attr: str | None = None
    #: Flask-Admin endpoint of the host's product view, used to link to linked products.
    product_admin_endpoint: str | None = None
    #: Page size of the offers list.
    page_size: int = 50
    #: Auto-link over more offers than this runs as a background job with progress.
    autolink_inline_limit: int = 5000
    #: Offers per transaction (and progress step) of a background auto-link.
    autolink_batch: int = 50000
    #: Mapping assistant: regular expressions (case-insensitive, a list) of seller-SKU affixes
    #: ignored when comparing an offer's SKU with product codes ("-FBA", "/B", "AMZ-", ...).
    suggest_sku_affixes: tuple[str, ...] = DEFAULT_SKU_AFFIXES
    #: Mapping assistant: offers scored per batch (one set of queries per batch).
    suggest_batch_size: int = 500
    #: Mapping assistant: after an import that added, changed or restored offers, start the
    #: suggestion job for its integration (the Suggestions view is ready without a click).
    suggest_after_import: bool = True
    #: Mapping assistant: seconds between two checks (by one of the workers) whether the host's
    #: product catalogue changed, e.g. with plain SQL; when it did, the suggestion job starts
    #: for every active integration with unlinked offers. 0 disables the check.
    suggest_refresh_interval: float = 600.0
    #: Mapping assistant: add triggers to the host's product table that log its changes, so
    #: the staleness check before every use is one lookup instead of an aggregate over every
    #: product (each insert, update or delete of a product then also writes one log row; one
    #: per statement on PostgreSQL). False never creates them (``flask xsale-amazon
    #: drop-triggers`` drops existing ones).
    suggest_triggers: bool = True
    #: Mapping assistant, SQLite and MySQL/MariaDB: the trigger log is trusted only while the
    #: product table's fingerprint was verified less than this many seconds ago (MariaDB's
    #: TRUNCATE TABLE fires no trigger); the workers' periodic check verifies it every
    #: ``suggest_refresh_interval``. 0 trusts the log for ever.
    suggest_fingerprint_max_age: float = 1800.0
    #: Mapping assistant: a web request (Suggestions view, link dialog) refreshes a stale
    #: product index itself only when the refresh goes through at most this many products
    #: (it walks every product); a larger one runs as the catalogue check job while the
    #: request says "the product index is being rebuilt". 0: always in the job.
    suggest_inline_refresh_limit: int = 10000
    #: IANA time zone of "daily at HH:MM" schedules and of the times the schedule shows;
    #: ``None`` uses the host's ``BABEL_DEFAULT_TIMEZONE`` (UTC when unset).
    timezone: str | None = None
    #: Seconds between two checks of the schedules by each worker.
    schedule_tick: float = 30.0
    #: An integration without a schedule is stale after this many seconds without a successful
    #: import (with a schedule: after twice its interval).
    stale_after: float = 48 * 3600.0
    #: Scheduled runs failing in a row that pause the schedule.
    schedule_max_failures: int = 3

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """Read every ``XSALE_AMAZON_*`` key of ``config`` (defaults for missing ones)."""
        values = {f.name: config[PREFIX + f.name.upper()] for f in _public_fields()
                  if PREFIX + f.name.upper() in config}
        return cls._validated(values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied, validated like :meth:`from_config`."""
        current = {f.name: getattr(self, f.name) for f in _public_fields()}
        return self._validated({**current, **changes})

    @classmethod
    def _validated(cls, values: dict[str, Any]) -> Settings:
        known = {f.name for f in _public_fields()}
        unknown = set(values) - known
        if unknown:
            raise SettingsError(f"Unknown setting(s): {', '.join(sorted(unknown))}.")
        converted = {}
        for f in _public_fields():
            if f.name in values:
                optional = "None" in str(f.type)
                converted[f.name] = _convert(f.name, values[f.name], f.default, optional)
        settings = cls(**converted)
        settings._check_ranges()
        return settings

    def _check_ranges(self) -> None:
        positive = ("poll_interval", "poll_max_interval", "report_deadline", "job_timeout",
                    "batch_size", "heartbeat_timeout", "http_timeout", "page_size",
                    "autolink_batch", "suggest_batch_size", "hold_expiry", "schedule_tick",
                    "stale_after", "schedule_max_failures")
        for name in positive:
            if getattr(self, name) <= 0:
                _fail(name, getattr(self, name), "a number greater than 0")
        for name in ("report_reuse_window", "max_retries", "invalid_lines_kept",
                     "autolink_inline_limit", "suggest_refresh_interval",
                     "suggest_fingerprint_max_age", "suggest_inline_refresh_limit"):
            if getattr(self, name) < 0:
                _fail(name, getattr(self, name), "a number of 0 or more")
        for name in ("removal_guard", "max_invalid_share"):
            if not 0 <= getattr(self, name) <= 1:
                _fail(name, getattr(self, name), "a share between 0 and 1 (0.2 = 20 %)")
        if self.poll_backoff < 1:
            _fail("poll_backoff", self.poll_backoff, "a multiplier of 1 or more")
        if not self.queue.strip():
            _fail("queue", self.queue, "a non-empty queue name")
        if not self.download_hosts:
            _fail("download_hosts", self.download_hosts, "at least one host name")
        for pattern in self.suggest_sku_affixes:
            try:
                re.compile(pattern)
            except re.error as exc:
                _fail("suggest_sku_affixes", pattern, f"a valid regular expression ({exc})")
        if self.timezone and self.timezone.upper() != "UTC":
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                _fail("timezone", self.timezone, "an IANA time zone name such as 'Europe/Warsaw'")

    @property
    def encryption_keys(self) -> list[str]:
        """The configured Fernet keys, first (the encrypting one) first; empty when derived."""
        key = self.encryption_key
        if not key:
            return []
        if isinstance(key, str):
            return [k.strip() for k in key.split(",") if k.strip()]
        return list(key)


def _public_fields() -> list[dataclasses.Field[Any]]:
    return [f for f in fields(Settings) if f.init]


def _fail(name: str, value: Any, expected: str) -> NoReturn:
    raise SettingsError(
        f"{PREFIX}{name.upper()} must be {expected}; it is {value!r}. Fix it in the app's "
        "configuration (see the configuration table of the README)."
    )


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _to_keys(name: str, value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    _fail(name, value, "a Fernet key, a comma-separated string of keys or a list of keys")


def _to_optional_str(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        _fail(name, value, "a string or None")
    return value


def _to_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    _fail(name, value, "True or False")


def _to_number(name: str, value: Any) -> float:
    if isinstance(value, bool):  # a bool is an int to Python, never a number to an operator
        _fail(name, value, "a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        _fail(name, value, "a number")
    if not math.isfinite(number):
        _fail(name, value, "a finite number")
    return number


def _to_int(name: str, value: Any) -> int:
    number = _to_number(name, value)
    if number != int(number):
        _fail(name, value, "a whole number")
    return int(number)


def _to_strings(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple, set, frozenset)) or not all(
            isinstance(v, str) for v in value):
        _fail(name, value, "a list of strings")
    return tuple(value)


def _to_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        _fail(name, value, "a string")
    return value


#: The type of a field's default -> the converter of its configured value.
_CONVERTERS: dict[type, Callable[[str, Any], Any]] = {
    bool: _to_bool, int: _to_int, float: _to_number, tuple: _to_strings, str: _to_str,
}


def _convert(name: str, value: Any, default: Any, optional: bool) -> Any:
    """``value`` converted to the type of ``default`` (the field's type), or SettingsError."""
    if name == "encryption_key":
        return _to_keys(name, value)
    if optional:
        return _to_optional_str(name, value)
    return _CONVERTERS[type(default)](name, value)


#: The documented defaults, by config key (``XSALE_AMAZON_`` + upper-case field name).
DEFAULTS: dict[str, Any] = {f.name.upper(): f.default for f in _public_fields()}
