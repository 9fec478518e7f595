"""Models of the plugin, built on the host's Flask-SQLAlchemy ``db`` and ``Product`` model.

The mixins hold the columns; :func:`make_models` binds them to the host's ``db.Model`` and
product table (any primary-key type, any table name). Call it from the host's models module
if Alembic/Flask-Migrate should see the tables before ``init_app`` runs; it returns the same
classes every time for the same ``db``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import declared_attr, relationship

ACCOUNT_TYPES = ("FBA", "FBM")


class Status:
    QUEUED = "queued"
    REQUESTING = "requesting"
    WAITING = "waiting"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    NO_DATA = "no_data"
    FAILED = "failed"

    ACTIVE = (QUEUED, REQUESTING, WAITING, PROCESSING)
    ENDED = (SUCCEEDED, NO_DATA, FAILED)


class Stage:
    QUEUED = "queued"
    REQUESTING = "requesting_report"
    WAITING = "waiting_for_amazon"
    DOWNLOADING = "downloading"
    PARSING = "parsing"
    SAVING = "saving"
    DONE = "done"


class LinkMethod:
    MANUAL = "manual"
    SKU = "sku"
    EAN = "ean"
    ASIN = "asin"

    ALL = (MANUAL, SKU, EAN, ASIN)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (SQLite hands timestamps back naive)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


# A plain type (not a TypeDecorator) so Alembic autogenerate renders it without imports.
UTCDateTime = sa.DateTime(timezone=True)

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _secret_box():
    return current_app.extensions["xsale_amazon"].secret_box


class AmazonIntegrationMixin:
    """One Amazon marketplace + account type (FBA or FBM) of one seller."""

    __tablename__ = "xsale_amazon_integration"

    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(120), nullable=False)
    marketplace = sa.Column(sa.String(2), nullable=False, index=True)
    account_type = sa.Column(sa.String(3), nullable=False)
    seller_id = sa.Column(sa.String(40), nullable=False, default="")
    lwa_client_id = sa.Column(sa.String(255), nullable=False, default="")
    lwa_client_secret_ciphertext = sa.Column("lwa_client_secret", sa.Text)
    refresh_token_ciphertext = sa.Column("refresh_token", sa.Text)
    active = sa.Column(sa.Boolean, nullable=False, default=True)
    created_at = sa.Column(UTCDateTime, nullable=False, default=utcnow)
    updated_at = sa.Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)

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
    def marketplace_info(self):
        from .marketplaces import get_marketplace

        return get_marketplace(self.marketplace)

    def __str__(self) -> str:
        return f"{self.name} ({self.marketplace} {self.account_type})"


class AmazonOfferMixin:
    """An offer (listing) as Amazon reported it. Never descriptions, images or parameters."""

    __tablename__ = "xsale_amazon_offer"

    id = sa.Column(BigId, primary_key=True)
    seller_sku = sa.Column(sa.String(200), nullable=False)
    asin = sa.Column(sa.String(20))  # indexed in __table_args__
    name = sa.Column(sa.Text)
    listing_id = sa.Column(sa.String(40))
    price = sa.Column(sa.Numeric(14, 2))
    currency = sa.Column(sa.String(3))
    quantity = sa.Column(sa.Integer)
    fulfillment_channel = sa.Column(sa.String(40))
    status = sa.Column(sa.String(40))
    product_id = sa.Column(sa.String(40))  # indexed in __table_args__
    product_id_type = sa.Column(sa.String(10))
    open_date = sa.Column(UTCDateTime)
    open_date_raw = sa.Column(sa.String(64))
    first_seen_at = sa.Column(UTCDateTime, nullable=False, default=utcnow)
    last_seen_at = sa.Column(UTCDateTime, nullable=False, default=utcnow)
    removed_at = sa.Column(UTCDateTime)

    @declared_attr
    def integration_id(cls):
        return sa.Column(
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
        )

    @property
    def is_fba(self) -> bool:
        return (self.fulfillment_channel or "").upper().startswith(("AMAZON", "AFN"))

    def __str__(self) -> str:
        return f"{self.seller_sku} {self.asin or ''}".strip()


class OfferProductLinkMixin:
    """The link of one offer to one host product (several offers may share a product)."""

    __tablename__ = "xsale_amazon_offer_product_link"

    id = sa.Column(BigId, primary_key=True)
    method = sa.Column(sa.String(10), nullable=False, default=LinkMethod.MANUAL)
    created_by = sa.Column(sa.String(200))
    created_at = sa.Column(UTCDateTime, nullable=False, default=utcnow)

    @declared_attr
    def offer_id(cls):
        return sa.Column(
            BigId,
            sa.ForeignKey("xsale_amazon_offer.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        )


class ImportRunMixin:
    """One "Import offers" run of one integration, from the click to the summary."""

    __tablename__ = "xsale_amazon_import_run"

    id = sa.Column(sa.Integer, primary_key=True)
    status = sa.Column(sa.String(20), nullable=False, default=Status.QUEUED, index=True)
    stage = sa.Column(sa.String(30), nullable=False, default=Stage.QUEUED)
    #: Equals integration_id while the run is active, NULL once it ended; unique, so the
    #: database itself guarantees one active import per integration.
    active_lock = sa.Column(sa.Integer, unique=True)
    trigger = sa.Column(sa.String(20), nullable=False, default="api")
    requested_by = sa.Column(sa.String(200))
    rq_job_id = sa.Column(sa.String(100))
    report_id = sa.Column(sa.String(100))
    report_document_id = sa.Column(sa.String(300))
    report_reused = sa.Column(sa.Boolean, nullable=False, default=False)
    report_created_at = sa.Column(UTCDateTime)
    poll_count = sa.Column(sa.Integer, nullable=False, default=0)
    next_poll_at = sa.Column(UTCDateTime)
    encoding = sa.Column(sa.String(20))
    header_family = sa.Column(sa.String(20))
    download_bytes = sa.Column(sa.BigInteger)
    rows_total = sa.Column(sa.Integer)
    rows_done = sa.Column(sa.Integer, nullable=False, default=0)
    count_read = sa.Column(sa.Integer, nullable=False, default=0)
    count_created = sa.Column(sa.Integer, nullable=False, default=0)
    count_updated = sa.Column(sa.Integer, nullable=False, default=0)
    count_unchanged = sa.Column(sa.Integer, nullable=False, default=0)
    count_removed = sa.Column(sa.Integer, nullable=False, default=0)
    count_restored = sa.Column(sa.Integer, nullable=False, default=0)
    count_skipped_channel = sa.Column(sa.Integer, nullable=False, default=0)
    count_invalid = sa.Column(sa.Integer, nullable=False, default=0)
    count_duplicate = sa.Column(sa.Integer, nullable=False, default=0)
    count_without_asin = sa.Column(sa.Integer, nullable=False, default=0)
    invalid_lines = sa.Column(sa.JSON)
    durations = sa.Column(sa.JSON)
    error_code = sa.Column(sa.String(40))
    error_message = sa.Column(sa.Text)
    #: Parameters of the translated error message (see :mod:`xsale_amazon_plugin.messages`).
    error_params = sa.Column(sa.JSON)
    #: Step-level retries after transient Amazon errors.
    retries = sa.Column(sa.Integer, nullable=False, default=0)
    created_at = sa.Column(UTCDateTime, nullable=False, default=utcnow, index=True)
    started_at = sa.Column(UTCDateTime)
    finished_at = sa.Column(UTCDateTime)
    heartbeat_at = sa.Column(UTCDateTime)

    @declared_attr
    def integration_id(cls):
        return sa.Column(
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
        }

    def __str__(self) -> str:
        return f"#{self.id}"


@dataclass(frozen=True)
class Models:
    AmazonIntegration: type
    AmazonOffer: type
    OfferProductLink: type
    ImportRun: type
    #: Core table the importer stages report rows in before applying them in one transaction.
    import_row: sa.Table
    product_model: type
    product_pk: sa.Column


_cache: weakref.WeakKeyDictionary[Any, Models] = weakref.WeakKeyDictionary()


def product_primary_key(product_model: type) -> sa.Column:
    pks = sa.inspect(product_model).primary_key
    if len(pks) != 1:
        raise TypeError(
            f"{product_model.__name__} has a composite primary key; xsale_amazon_plugin links "
            "offers to products with a single-column primary key."
        )
    return pks[0]


def make_models(db: Any, product_model: type) -> Models:
    """Create (once per ``db``) the plugin's model classes in the host's metadata."""
    cached = _cache.get(db)
    if cached is not None:
        if cached.product_model is not product_model:
            raise RuntimeError(
                "xsale_amazon_plugin models were already created for this db with product model "
                f"{cached.product_model.__name__}; pass the same product model everywhere."
            )
        return cached

    pk = product_primary_key(product_model)
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
    metadata = integration.__table__.metadata
    import_row = sa.Table(
        "xsale_amazon_import_row",
        metadata,
        sa.Column("run_id", sa.Integer,
                  sa.ForeignKey("xsale_amazon_import_run.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("line", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seller_sku", sa.String(200), nullable=False),
        sa.Column("asin", sa.String(20)),
        sa.Column("name", sa.Text),
        sa.Column("listing_id", sa.String(40)),
        sa.Column("price", sa.Numeric(14, 2)),
        sa.Column("quantity", sa.Integer),
        sa.Column("fulfillment_channel", sa.String(40)),
        sa.Column("status", sa.String(40)),
        sa.Column("product_id", sa.String(40)),
        sa.Column("product_id_type", sa.String(10)),
        sa.Column("open_date", UTCDateTime),
        sa.Column("open_date_raw", sa.String(64)),
        # Not needed by the usual hash joins, but it keeps the removal anti-join fast when
        # the planner misjudges the staged row count (seen: a 60k-row nested loop for minutes).
        sa.Index("ix_xsale_amazon_import_row_sku", "run_id", "seller_sku"),
    )
    # Staged rows are disposable (a run re-stages from the report), so PostgreSQL need not
    # WAL-log them; OfferImporter.apply detects a crash-emptied table (StagingLost).
    sa.event.listen(import_row, "after_create", sa.DDL(
        "ALTER TABLE xsale_amazon_import_row SET UNLOGGED").execute_if(dialect="postgresql"))
    models = Models(integration, offer, link, run, import_row, product_model, pk)
    _cache[db] = models
    return models
