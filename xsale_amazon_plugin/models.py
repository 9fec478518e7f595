"""Models of the plugin, built on the host's Flask-SQLAlchemy ``db`` and ``Product`` model.

The mixins hold the columns; :func:`make_models` binds them to the host's ``db.Model`` and
product table (any primary-key type, any table name). Call it from the host's models module
if Alembic/Flask-Migrate should see the tables before ``init_app`` runs; it returns the same
classes every time for the same ``db``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from .amazon.marketplaces import Marketplace, get_marketplace
from .amazon.report_parser import MAX_SKU_LENGTH
from .dialects import MYSQL_FAMILY
from .proxies import current_amazon
from .timeutil import utcnow

ACCOUNT_TYPES = ("FBA", "FBM")


class Status:
    """Run statuses; ``ACTIVE`` ones hold the integration's ``active_lock``."""

    QUEUED = "queued"
    REQUESTING = "requesting"
    WAITING = "waiting"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    NO_DATA = "no_data"
    FAILED = "failed"
    #: Stopped before the apply because it would remove too many offers; the staged report
    #: waits for an operator to confirm or discard it. Not active: it holds no import lock.
    HELD = "held"
    #: A held run the operator discarded (or a newer import / the expiry replaced).
    DISCARDED = "discarded"
    #: Stopped by the operator (*Cancel import*); nothing of it was applied.
    CANCELLED = "cancelled"

    ACTIVE = (QUEUED, REQUESTING, WAITING, PROCESSING)
    ENDED = (SUCCEEDED, NO_DATA, FAILED, DISCARDED, CANCELLED)


class ReportMode:
    """How a run gets its All Listings Report."""

    #: Reuse a DONE report younger than REPORT_REUSE_WINDOW (never one a failed run used).
    AUTO = "auto"
    #: Always request a new report (e.g. *Run again* after a failure).
    FRESH = "fresh"
    #: Use the report the operator chose in the Import dialog (``reuse_report_id``).
    REUSE = "reuse"

    ALL = (AUTO, FRESH, REUSE)


class Stage:
    """Where an active run is, for the progress page."""

    QUEUED = "queued"
    REQUESTING = "requesting_report"
    WAITING = "waiting_for_amazon"
    DOWNLOADING = "downloading"
    PARSING = "parsing"
    SAVING = "saving"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    DONE = "done"


class LinkMethod:
    """How a link was made: by hand or by auto-link on SKU, EAN or ASIN."""

    MANUAL = "manual"
    SKU = "sku"
    EAN = "ean"
    ASIN = "asin"
    #: Accepted from the mapping assistant's suggestions.
    SUGGESTION = "suggestion"

    ALL = (MANUAL, SKU, EAN, ASIN, SUGGESTION)


def int_in_range(value: Any, column: Any = None) -> int | None:
    """``value`` as an int when it fits the integer ``column`` (default: 32-bit), else None.

    Ids from URLs, forms and the CLI are user input: ``abc``, ``1;DROP`` or
    ``999999999999999999999`` must read as "no such record" instead of a database error
    (PostgreSQL rejects values out of the column's range, SQLite out of 64 bits).
    """
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    col_type = getattr(column, "type", None)
    bits = 63 if isinstance(col_type, sa.BigInteger) else 31
    return number if -(2**bits) <= number < 2**bits else None


# Plain types with dialect variants (not TypeDecorators), so Alembic autogenerate renders them.
# MySQL/MariaDB DATETIME keeps whole seconds unless asked for microseconds.
UTCDateTime = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), *MYSQL_FAMILY)

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _identifier(length: int) -> Any:
    """A string column of Amazon identifiers (SKU, ASIN, product id).

    They compare byte for byte, as on Amazon and in PostgreSQL: "ABC-1" and "abc-1" (or "café"
    and "cafe") are two offers. MySQL/MariaDB's default collations are case- and
    accent-insensitive, so these columns get a binary one. (utf8mb4_bin ignores trailing
    spaces; the report parser strips identifiers, so none reach it.)
    """
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), *MYSQL_FAMILY)


#: Offer names can exceed MySQL's TEXT (64 KB); MEDIUMTEXT holds 16 MB.
LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), *MYSQL_FAMILY)

#: utf8mb4 whatever the host database's default (MySQL's old "utf8" cannot store emoji).
#: Not on the link table: its product_id must match the host product key's character set.
MYSQL_TABLE_OPTIONS: dict[str, Any] = {"mysql_charset": "utf8mb4",
                                       "mysql_collate": "utf8mb4_unicode_ci"}


def _secret_box() -> Any:
    return current_amazon.secret_box


#: Widths of the offer columns a report fills; the staging table copies the offer table's
#: column types and the writer rejects longer values, so this is the one place they are set.
ASIN_LENGTH = 20
LISTING_ID_LENGTH = 40
CHANNEL_LENGTH = 40
OFFER_STATUS_LENGTH = 40
PRODUCT_ID_LENGTH = 40
PRODUCT_ID_TYPE_LENGTH = 10
OPEN_DATE_RAW_LENGTH = 64
PRICE_PRECISION, PRICE_SCALE = 14, 2


#: Offer columns a report row fills besides ``seller_sku`` (staged, compared, updated).
REPORT_COLUMNS = ("asin", "name", "listing_id", "price", "quantity", "fulfillment_channel",
                  "status", "product_id", "product_id_type", "open_date", "open_date_raw")


class AmazonIntegrationMixin:
    """One Amazon marketplace + account type (FBA or FBM) of one seller."""

    __tablename__ = "xsale_amazon_integration"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), nullable=False)
    marketplace: Mapped[str] = mapped_column(sa.String(2), nullable=False, index=True)
    account_type: Mapped[str] = mapped_column(sa.String(3), nullable=False)
    seller_id: Mapped[str] = mapped_column(sa.String(40), nullable=False, default="")
    lwa_client_id: Mapped[str] = mapped_column(sa.String(255), nullable=False, default="")
    lwa_client_secret_ciphertext: Mapped[str | None] = mapped_column("lwa_client_secret",
                                                                     sa.Text)
    refresh_token_ciphertext: Mapped[str | None] = mapped_column("refresh_token", sa.Text)
    active: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow,
                                                 onupdate=utcnow)

    @declared_attr
    def __table_args__(cls):
        # One integration per seller, marketplace and account type: two would import the
        # same offers twice and fight over them. (A fresh constraint per model class: the
        # mixin serves every host db.)
        return (
            sa.UniqueConstraint("seller_id", "marketplace", "account_type",
                                name="uq_xsale_amazon_integration_account"),
            MYSQL_TABLE_OPTIONS,
        )

    @property
    def lwa_client_secret(self) -> str | None:
        token = self.lwa_client_secret_ciphertext
        return _secret_box().decrypt(token) if token else None

    @lwa_client_secret.setter
    def lwa_client_secret(self, value: str | None) -> None:
        self.lwa_client_secret_ciphertext = _secret_box().encrypt(value) if value else None

    @property
    def refresh_token(self) -> str | None:
        token = self.refresh_token_ciphertext
        return _secret_box().decrypt(token) if token else None

    @refresh_token.setter
    def refresh_token(self, value: str | None) -> None:
        self.refresh_token_ciphertext = _secret_box().encrypt(value) if value else None

    @property
    def has_credentials(self) -> bool:
        secrets = (self.lwa_client_secret_ciphertext, self.refresh_token_ciphertext)
        return bool(self.lwa_client_id and all(secrets))

    @property
    def marketplace_info(self) -> Marketplace:
        return get_marketplace(self.marketplace)

    def __str__(self) -> str:
        return f"{self.name} ({self.marketplace} {self.account_type})"


class AmazonOfferMixin:
    """An offer (listing) as Amazon reported it. Never descriptions, images or parameters."""

    __tablename__ = "xsale_amazon_offer"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    seller_sku: Mapped[str] = mapped_column(_identifier(MAX_SKU_LENGTH), nullable=False)
    asin: Mapped[str | None] = mapped_column(_identifier(ASIN_LENGTH))  # indexed below
    name: Mapped[str | None] = mapped_column(LongText)
    listing_id: Mapped[str | None] = mapped_column(sa.String(LISTING_ID_LENGTH))
    price: Mapped[Decimal | None] = mapped_column(sa.Numeric(PRICE_PRECISION, PRICE_SCALE))
    currency: Mapped[str | None] = mapped_column(sa.String(3))
    quantity: Mapped[int | None] = mapped_column(sa.Integer)
    fulfillment_channel: Mapped[str | None] = mapped_column(sa.String(CHANNEL_LENGTH))
    status: Mapped[str | None] = mapped_column(sa.String(OFFER_STATUS_LENGTH))
    # indexed in __table_args__
    product_id: Mapped[str | None] = mapped_column(_identifier(PRODUCT_ID_LENGTH))
    product_id_type: Mapped[str | None] = mapped_column(sa.String(PRODUCT_ID_TYPE_LENGTH))
    open_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    open_date_raw: Mapped[str | None] = mapped_column(sa.String(OPEN_DATE_RAW_LENGTH))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @declared_attr
    def integration_id(cls) -> Mapped[int]:
        return mapped_column(
            sa.ForeignKey("xsale_amazon_integration.id", ondelete="CASCADE"), nullable=False
        )

    @declared_attr
    def __table_args__(cls):
        return (
            sa.UniqueConstraint("integration_id", "seller_sku", name="uq_xsale_amazon_offer_sku"),
            sa.Index("ix_xsale_amazon_offer_integration_removed", "integration_id", "removed_at"),
            # text_pattern_ops: the admin search matches these by prefix (LIKE 'term%'),
            # which a default-collation btree cannot serve unless the collation is "C".
            # Equality lookups (auto-link by SKU/EAN/ASIN) use them as well.
            sa.Index("ix_xsale_amazon_offer_sku", "seller_sku",
                     postgresql_ops={"seller_sku": "text_pattern_ops"}),
            sa.Index("ix_xsale_amazon_offer_asin", "asin",
                     postgresql_ops={"asin": "text_pattern_ops"}),
            sa.Index("ix_xsale_amazon_offer_product_id", "product_id",
                     postgresql_ops={"product_id": "text_pattern_ops"}),
            MYSQL_TABLE_OPTIONS,
        )

    @property
    def is_fba(self) -> bool:
        return (self.fulfillment_channel or "").upper().startswith(("AMAZON", "AFN"))

    def __str__(self) -> str:
        return f"{self.seller_sku} {self.asin or ''}".strip()


class OfferProductLinkMixin:
    """The link of one offer to one host product (several offers may share a product)."""

    __tablename__ = "xsale_amazon_offer_product_link"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    method: Mapped[str] = mapped_column(sa.String(10), nullable=False, default=LinkMethod.MANUAL)
    created_by: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    @declared_attr
    def offer_id(cls) -> Mapped[int]:
        return mapped_column(
            BigId,
            sa.ForeignKey("xsale_amazon_offer.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        )


class ImportRunMixin:
    """One "Import offers" run of one integration, from the click to the summary."""

    __tablename__ = "xsale_amazon_import_run"
    __table_args__ = MYSQL_TABLE_OPTIONS

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(20), nullable=False, default=Status.QUEUED,
                                        index=True)
    stage: Mapped[str] = mapped_column(sa.String(30), nullable=False, default=Stage.QUEUED)
    #: Equals integration_id while the run is active, NULL once it ended; unique, so the
    #: database itself guarantees one active import per integration.
    active_lock: Mapped[int | None] = mapped_column(sa.Integer, unique=True)
    trigger: Mapped[str] = mapped_column(sa.String(20), nullable=False, default="api")
    requested_by: Mapped[str | None] = mapped_column(sa.String(200))
    rq_job_id: Mapped[str | None] = mapped_column(sa.String(100))
    report_id: Mapped[str | None] = mapped_column(sa.String(100))
    report_document_id: Mapped[str | None] = mapped_column(sa.String(300))
    report_reused: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    #: See :class:`ReportMode`.
    report_mode: Mapped[str] = mapped_column(sa.String(10), nullable=False,
                                             default=ReportMode.AUTO)
    #: With ``report_mode == "reuse"``: the report the operator chose.
    reuse_report_id: Mapped[str | None] = mapped_column(sa.String(100))
    report_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    poll_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    encoding: Mapped[str | None] = mapped_column(sa.String(20))
    header_family: Mapped[str | None] = mapped_column(sa.String(20))
    download_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    rows_total: Mapped[int | None] = mapped_column(sa.Integer)
    rows_done: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    count_read: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    count_created: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    count_updated: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    count_unchanged: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    count_removed: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    count_restored: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    count_skipped_channel: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    count_invalid: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    count_duplicate: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    count_without_asin: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    #: Live offers kept as they were because only an invalid line of the report named them.
    count_kept: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    #: Charset the download declared (``Content-Type``), whatever was used to decode it.
    declared_charset: Mapped[str | None] = mapped_column(sa.String(40))
    #: Rows staged for a held run; confirming checks they are all still there.
    staged_rows: Mapped[int | None] = mapped_column(sa.Integer)
    #: Apply even if the report removes more offers than ``XSALE_AMAZON_REMOVAL_GUARD``
    #: allows (``--allow-removal``, or a confirmed hold).
    allow_removal: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    #: Who confirmed or discarded a held run.
    confirmed_by: Mapped[str | None] = mapped_column(sa.String(200))
    invalid_lines: Mapped[Any | None] = mapped_column(sa.JSON)
    durations: Mapped[Any | None] = mapped_column(sa.JSON)
    error_code: Mapped[str | None] = mapped_column(sa.String(40))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    #: Parameters of the translated error message (see
    #: :mod:`xsale_amazon_plugin.importing.messages`).
    error_params: Mapped[Any | None] = mapped_column(sa.JSON)
    #: Step-level retries after transient Amazon errors.
    retries: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow,
                                                 index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @declared_attr
    def integration_id(cls) -> Mapped[int]:
        return mapped_column(
            sa.ForeignKey("xsale_amazon_integration.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )

    @property
    def is_active(self) -> bool:
        return self.status in Status.ACTIVE

    @property
    def counts(self) -> dict[str, int]:
        return {
            "read": self.count_read,
            "created": self.count_created,
            "updated": self.count_updated,
            "unchanged": self.count_unchanged,
            "removed": self.count_removed,
            "restored": self.count_restored,
            "skipped": self.count_skipped_channel,
            "invalid": self.count_invalid,
            "duplicate": self.count_duplicate,
            "without_asin": self.count_without_asin,
            "kept": self.count_kept,
        }

    def __str__(self) -> str:
        return f"#{self.id}"


class AutoLinkRunMixin:
    """One background auto-link over many offers: its request, progress and summary."""

    __tablename__ = "xsale_amazon_autolink_run"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    #: queued, running, succeeded or failed.
    status: Mapped[str] = mapped_column(sa.String(20), nullable=False, default="queued")
    #: What is compared: sku, ean or asin.
    key: Mapped[str] = mapped_column(sa.String(10), nullable=False)
    #: The offers: ``{"scope": OfferScope JSON}`` or ``{"offer_ids": [...]}``.
    request: Mapped[dict[str, Any]] = mapped_column(sa.JSON, nullable=False)
    requested_by: Mapped[str | None] = mapped_column(sa.String(200))
    rq_job_id: Mapped[str | None] = mapped_column(sa.String(100))
    #: Not removed offers in scope when the run started, and how many were looked at so far.
    offers_total: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    offers_done: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    count_linked: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    count_ambiguous: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    count_no_match: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    count_no_key: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    count_already_linked: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def is_active(self) -> bool:
        return self.status in ("queued", "running")
class ScheduleKind:
    """Kinds of import schedule of an integration."""

    OFF = "off"
    EVERY = "every"
    DAILY = "daily"

    ALL = (OFF, EVERY, DAILY)


class SlotOutcome:
    """What a due schedule slot led to."""

    CLAIMED = "claimed"  # the slot was taken; its run is being started
    STARTED = "started"
    SKIPPED = "skipped"  # an import was already running
    NOT_STARTED = "not_started"  # start_import refused (credentials, inactive, queue down)

    ALL = (CLAIMED, STARTED, SKIPPED, NOT_STARTED)


class SyncScheduleMixin:
    """Schedule and alert bookkeeping of one integration (a row once it was first used).

    ``last_slot_at`` is the arbiter of "exactly one run per slot": a worker owns a slot only
    if its compare-and-set UPDATE moved ``last_slot_at`` forward to that slot.
    """

    __tablename__ = "xsale_amazon_schedule"

    kind: Mapped[str] = mapped_column(sa.String(10), nullable=False, default=ScheduleKind.OFF)
    every_minutes: Mapped[int | None] = mapped_column(sa.Integer)
    #: "HH:MM" in the plugin's time zone (XSALE_AMAZON_TIMEZONE).
    daily_at: Mapped[str | None] = mapped_column(sa.String(5))
    #: Slots of an "every" schedule are anchor_at + k × every_minutes.
    anchor_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_slot_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_reason: Mapped[str | None] = mapped_column(sa.String(40))
    #: Scheduled runs before this moment do not count towards the failure streak.
    failures_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: An operator looked at the integration's alerts at this moment.
    alert_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: integration_stale was sent for the stale period that began before this moment.
    stale_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow,
                                                 onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(sa.String(200))

    @declared_attr
    def integration_id(cls) -> Mapped[int]:
        return mapped_column(
            sa.ForeignKey("xsale_amazon_integration.id", ondelete="CASCADE"), primary_key=True,
            autoincrement=False,
        )


class ScheduleSlotMixin:
    """What happened at one due slot of a schedule (unique per integration and slot)."""

    __tablename__ = "xsale_amazon_schedule_slot"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    slot_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    outcome: Mapped[str] = mapped_column(sa.String(20), nullable=False,
                                         default=SlotOutcome.CLAIMED)
    error_code: Mapped[str | None] = mapped_column(sa.String(40))
    detail: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    @declared_attr
    def integration_id(cls) -> Mapped[int]:
        return mapped_column(
            sa.ForeignKey("xsale_amazon_integration.id", ondelete="CASCADE"), nullable=False
        )

    @declared_attr
    def run_id(cls) -> Mapped[int | None]:
        return mapped_column(sa.ForeignKey("xsale_amazon_import_run.id", ondelete="SET NULL"))

    @declared_attr
    def __table_args__(cls):
        return (
            sa.UniqueConstraint("integration_id", "slot_at", name="uq_xsale_amazon_schedule_slot"),
        )


# The mapping assistant's tables (rows of the suggest package, defined here so that the models
# own every table of the plugin). Plain timestamps, unlike UTCDateTime above (no MySQL variant).
SuggestDateTime = sa.DateTime(timezone=True)
KEY_LENGTH = 64
TERM_LENGTH = 80


@dataclass(frozen=True)
class SuggestTables:
    product: sa.Table
    term: sa.Table
    term_df: sa.Table
    catalog: sa.Table
    suggestion: sa.Table
    rejection: sa.Table
    change: sa.Table


_tables: weakref.WeakKeyDictionary[sa.MetaData, SuggestTables] = weakref.WeakKeyDictionary()


def make_suggest_tables(metadata: sa.MetaData, offer_id_type: Any) -> SuggestTables:
    """Define (once per metadata) the assistant's tables next to the plugin's models."""
    existing = _tables.get(metadata)
    if existing is not None:
        return existing
    product = sa.Table(
        "xsale_amazon_suggest_product", metadata,
        sa.Column("product_key", sa.String(KEY_LENGTH), primary_key=True),
        sa.Column("sku", sa.String(255)),
        sa.Column("sku_norm", sa.String(255), index=True),
        sa.Column("gtin", sa.String(14), index=True),
        sa.Column("asin", sa.String(20), index=True),
        sa.Column("title", sa.Text),
        sa.Column("row_hash", sa.BigInteger, nullable=False),
    )
    term = sa.Table(
        "xsale_amazon_suggest_term", metadata,
        sa.Column("term", sa.String(TERM_LENGTH), primary_key=True),
        sa.Column("product_key", sa.String(KEY_LENGTH), primary_key=True),
    )
    term_df = sa.Table(
        "xsale_amazon_suggest_term_df", metadata,
        sa.Column("term", sa.String(TERM_LENGTH), primary_key=True),
        sa.Column("df", sa.Integer, nullable=False),
    )
    catalog = sa.Table(
        "xsale_amazon_suggest_catalog", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("fingerprint", sa.String(80), nullable=False),
        sa.Column("product_count", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("refreshed_at", SuggestDateTime, nullable=False),
    )
    suggestion = sa.Table(
        "xsale_amazon_suggestion", metadata,
        sa.Column("offer_id", offer_id_type,
                  sa.ForeignKey("xsale_amazon_offer.id", ondelete="CASCADE"), primary_key=True),
        #: Hash of the offer fields the suggestions were computed from (offer changes).
        sa.Column("offer_hash", sa.BigInteger, nullable=False),
        #: ``catalog.version`` they were computed against (product changes).
        sa.Column("catalog_version", sa.Integer, nullable=False),
        sa.Column("computed_at", SuggestDateTime, nullable=False),
        sa.Column("best_product_key", sa.String(KEY_LENGTH)),
        sa.Column("best_score", sa.Float),
        sa.Column("best_confidence", sa.String(10)),
        sa.Column("suggestions", sa.JSON, nullable=False),
        #: ``no_match`` once an operator said no product fits (hidden from the queue).
        sa.Column("decision", sa.String(10)),
        sa.Index("ix_xsale_amazon_suggestion_best", "best_confidence"),
        sa.Index("ix_xsale_amazon_suggestion_best_product", "best_product_key"),
    )
    rejection = sa.Table(
        "xsale_amazon_suggestion_rejection", metadata,
        sa.Column("offer_id", offer_id_type,
                  sa.ForeignKey("xsale_amazon_offer.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("product_key", sa.String(KEY_LENGTH), primary_key=True),
        sa.Column("created_by", sa.String(200)),
        sa.Column("created_at", SuggestDateTime, nullable=False, default=utcnow),
    )
    #: Written by triggers on the product table in the writer's transaction (see
    #: :mod:`.suggest.triggers`): one row per statement (PostgreSQL) or per changed row (SQLite,
    #: MySQL/MariaDB); empty means "nothing changed since the check". AUTOINCREMENT on SQLite:
    #: an id is never reused, so a refresh deleting the ids it saw never deletes a later row.
    change = sa.Table(
        "xsale_amazon_suggest_change", metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sqlite_autoincrement=True,
    )
    tables = SuggestTables(product, term, term_df, catalog, suggestion, rejection, change)
    _tables[metadata] = tables
    return tables


def suggest_tables(models: Any) -> SuggestTables:
    return _tables[models.AmazonOffer.__table__.metadata]


@dataclass(frozen=True)
class Models:
    """The plugin's model classes bound to one host ``db`` (built by :func:`make_models`).

    Typed ``Any`` because they are created at run time on the host's declarative base.
    """

    AmazonIntegration: Any
    AmazonOffer: Any
    OfferProductLink: Any
    ImportRun: Any
    #: Core table the importer stages report rows in before applying them in one transaction.
    import_row: sa.Table
    product_model: Any
    product_pk: sa.Column[Any]
    #: Background auto-link runs (see :mod:`xsale_amazon_plugin.linking.autolink_job`).
    AutoLinkRun: Any = None
    #: Schedule and alert bookkeeping per integration; what happened at each due slot.
    SyncSchedule: Any = None
    ScheduleSlot: Any = None


_cache: weakref.WeakKeyDictionary[Any, Models] = weakref.WeakKeyDictionary()


def _product_primary_key(product_model: type) -> sa.Column[Any]:
    pks: tuple[sa.Column[Any], ...] = tuple(sa.inspect(product_model).primary_key)
    if len(pks) != 1:
        raise TypeError(
            f"{product_model.__name__} has a composite primary key; xsale_amazon_plugin links "
            "offers to products with a single-column primary key."
        )
    return pks[0]


def _mysql_integration_index(target: sa.Table, connection: sa.Connection, **kw: Any) -> None:
    if connection.dialect.name in MYSQL_FAMILY:
        connection.execute(sa.text(
            "CREATE INDEX ix_xsale_amazon_offer_integration_id ON xsale_amazon_offer "
            "(integration_id, id)"))


def make_models(db: Any, product_model: type) -> Models:
    """Create (once per ``db``) the plugin's model classes in the host's metadata.

    :param db: the host's Flask-SQLAlchemy object.
    :param product_model: the host's product model; any table name and any single-column
        primary key type.
    :returns: the :class:`Models`; the same object for every later call with this ``db``.
    :raises RuntimeError: the models were already created for ``db`` with another product
        model.

    .. versionadded:: 0.1.0
    """

    cached = _cache.get(db)
    if cached is not None:
        if cached.product_model is not product_model:
            raise RuntimeError(
                "xsale_amazon_plugin models were already created for this db with product model "
                f"{cached.product_model.__name__}; pass the same product model everywhere."
            )
        return cached

    pk = _product_primary_key(product_model)
    pk_type = pk.type.copy() if hasattr(pk.type, "copy") else pk.type
    bind_key = getattr(product_model, "__bind_key__", None)
    extra = {"__bind_key__": bind_key} if bind_key else {}

    # Relationships use the classes themselves, never their names: the host may have a
    # model called e.g. "AmazonOffer" in the same declarative registry.
    classes: dict[str, type] = {}
    integration = classes["integration"] = type(
        "AmazonIntegration",
        (AmazonIntegrationMixin, db.Model),
        {
            **extra,
            "offers": relationship(lambda: classes["offer"], back_populates="integration",
                                   passive_deletes=True, lazy="dynamic"),
            "runs": relationship(lambda: classes["run"], back_populates="integration",
                                 passive_deletes=True, lazy="dynamic"),
        },
    )
    offer = classes["offer"] = type(
        "AmazonOffer",
        (AmazonOfferMixin, db.Model),
        {
            **extra,
            "integration": relationship(integration, back_populates="offers"),
            "link": relationship(lambda: classes["link"], back_populates="offer", uselist=False,
                                 passive_deletes=True),
        },
    )
    link = classes["link"] = type(
        "OfferProductLink",
        (OfferProductLinkMixin, db.Model),
        {
            **extra,
            "product_id": sa.Column(
                pk_type, sa.ForeignKey(pk, ondelete="CASCADE"), nullable=False, index=True
            ),
            "offer": relationship(offer, back_populates="link"),
            "product": relationship(product_model),
        },
    )
    run = classes["run"] = type(
        "ImportRun",
        (ImportRunMixin, db.Model),
        {**extra, "integration": relationship(integration, back_populates="runs")},
    )
    metadata = integration.__table__.metadata  # type: ignore[attr-defined]
    offer_columns = offer.__table__.c  # type: ignore[attr-defined]
    import_row = sa.Table(
        "xsale_amazon_import_row",
        metadata,
        sa.Column("run_id", sa.Integer,
                  sa.ForeignKey("xsale_amazon_import_run.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("line", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seller_sku", offer_columns.seller_sku.type, nullable=False),
        *(sa.Column(name, offer_columns[name].type) for name in REPORT_COLUMNS),
        # True for a line rejected as invalid whose SKU could be read: only its SKU is staged,
        # and the apply neither updates nor removes that offer. NULL for a valid row.
        sa.Column("kept_invalid", sa.Boolean),
        # Not needed by the usual hash joins, but it keeps the removal anti-join fast when
        # the planner misjudges the staged row count (seen: a 60k-row nested loop for minutes).
        sa.Index("ix_xsale_amazon_import_row_sku", "run_id", "seller_sku"),
        **MYSQL_TABLE_OPTIONS,
    )
    # Staged rows are disposable (a run re-stages from the report), so PostgreSQL need not
    # WAL-log them; OfferWriter.apply detects a crash-emptied table (StagingLost).
    sa.event.listen(import_row, "after_create", sa.DDL(
        "ALTER TABLE xsale_amazon_import_row SET UNLOGGED").execute_if(dialect="postgresql"))
    make_suggest_tables(metadata, BigId)
    autolink_run = type("AutoLinkRun", (AutoLinkRunMixin, db.Model), {**extra})
    schedule = type("SyncSchedule", (SyncScheduleMixin, db.Model),
                    {**extra, "integration": relationship(integration)})
    slot = type("ScheduleSlot", (ScheduleSlotMixin, db.Model),
                {**extra, "run": relationship(run)})
    # MariaDB answers "offers of one integration, newest first" (the workspace's integration
    # and account-type filters) by sorting all of them unless (integration_id, id) is indexed:
    # 3.2 s -> 0.05 s at 1M offers. PostgreSQL walks the primary key backwards instead.
    sa.event.listen(offer.__table__, "after_create",  # type: ignore[attr-defined]
                    _mysql_integration_index)
    models = Models(integration, offer, link, run, import_row, product_model, pk,
                    autolink_run, SyncSchedule=schedule, ScheduleSlot=slot)
    _cache[db] = models
    return models
