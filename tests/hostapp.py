"""A tiny host application for tests: its own Product model, Flask-Admin and the plugin."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_admin import Admin
from flask_admin.theme import Bootstrap4Theme
from flask_sqlalchemy import SQLAlchemy

from xsale_amazon_plugin import XsaleAmazon

REDIS_URL = "redis://127.0.0.1:6379/9"
CLIENT_ID = "amzn1.application-oa2-client.test"
CLIENT_SECRET = "test-client-secret-Zq8"
REFRESH_TOKEN = "Atzr|test-refresh-token-Xy7"


@dataclass
class Host:
    app: Flask
    db: SQLAlchemy
    Product: type
    amazon: XsaleAmazon
    access: dict[str, bool] = field(default_factory=lambda: {"allowed": True})

    @property
    def models(self) -> Any:
        return self.amazon.models

    @property
    def state(self) -> Any:
        """The app's XsaleAmazon (what ``current_amazon`` is inside the app)."""
        return self.app.extensions["xsale_amazon"]

    def close(self) -> None:
        """End the session and close the app's database connections."""
        with self.app.app_context():
            self.db.session.remove()
            for engine in self.db.engines.values():
                engine.dispose()

    def configure(self, **settings: Any) -> None:
        """Change settings after ``init_app`` (keys as in config, without the prefix)."""
        ext = self.state
        ext.settings = ext.settings.replace(**{k.lower(): v for k, v in settings.items()})

    def add_integration(self, marketplace: str = "DE", account_type: str = "FBM",
                        **kwargs: Any) -> int:
        m = self.models
        with self.app.app_context():
            integ = m.AmazonIntegration(
                name=kwargs.pop("name", f"Amazon {marketplace} {account_type}"),
                marketplace=marketplace, account_type=account_type,
                seller_id=kwargs.pop("seller_id", "A1SELLER"),
                lwa_client_id=kwargs.pop("client_id", CLIENT_ID), **kwargs,
            )
            integ.lwa_client_secret = CLIENT_SECRET
            integ.refresh_token = REFRESH_TOKEN
            self.db.session.add(integ)
            self.db.session.commit()
            return integ.id

    def add_products(self, rows: list[dict[str, Any]]) -> list[Any]:
        with self.app.app_context():
            objs = [self.Product(**r) for r in rows]
            self.db.session.add_all(objs)
            self.db.session.commit()
            return [o.id for o in objs]


def make_host(
    db_url: str,
    *,
    pk: str = "int",
    table: str = "product",
    csrf: bool = False,
    babel: bool = True,
    config: dict[str, Any] | None = None,
    access: bool = True,
    redis: Any = None,
    extra_columns: dict[str, sa.Column[Any]] | None = None,
) -> Host:
    db = SQLAlchemy()
    if pk == "int":
        pk_col = sa.Column(sa.Integer, primary_key=True)
    elif pk == "uuid":
        pk_col = sa.Column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    elif pk == "str":
        pk_col = sa.Column(sa.String(40), primary_key=True,
                           default=lambda: "P-" + uuid.uuid4().hex[:12])
    else:
        raise ValueError(pk)
    product = type("Product", (db.Model,), {
        "__tablename__": table,
        "id": pk_col,
        "sku": sa.Column(sa.String(64), index=True),
        "ean": sa.Column(sa.String(20), index=True),
        "name": sa.Column(sa.String(255)),
        "asin": sa.Column(sa.String(20)),
        # Not indexed by the mapping assistant: the back office updates it all the time.
        "stock": sa.Column(sa.Integer),
        **(extra_columns or {}),
        "__str__": lambda self: f"{self.sku} {self.name}",
    })
    app = Flask(f"host_{uuid.uuid4().hex[:8]}")
    app.config.update(
        TESTING=True,
        SECRET_KEY="test-secret-key",
        SQLALCHEMY_DATABASE_URI=db_url,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        FLASK_ADMIN_RAISE_ON_VIEW_EXCEPTION=True,
        XSALE_AMAZON_REDIS_URL=REDIS_URL,
        XSALE_AMAZON_QUEUE="xa-test-" + uuid.uuid4().hex[:8],
        XSALE_AMAZON_POLL_INTERVAL=0.05,
        XSALE_AMAZON_POLL_MAX_INTERVAL=0.2,
        XSALE_AMAZON_MAX_RETRIES=2,
        XSALE_AMAZON_PRODUCT_ASIN_ATTR="asin",
        XSALE_AMAZON_BATCH_SIZE=500,
        XSALE_AMAZON_REPORT_REUSE_WINDOW=0,
    )
    app.config.update(config or {})
    if babel:
        from flask_babel import Babel

        Babel(app)
    if csrf:
        from flask_wtf.csrf import CSRFProtect

        CSRFProtect(app)
    db.init_app(app)
    admin = Admin(app, name="Host", theme=Bootstrap4Theme())
    amazon = XsaleAmazon()
    host = Host(app, db, product, amazon)
    host.access["allowed"] = access
    amazon.init_app(app, db=db, admin=admin, product_model=product,
                    access_check=lambda: host.access["allowed"],
                    current_user_name=lambda: "tester", redis=redis)
    with app.app_context():
        db.create_all()
    return host
