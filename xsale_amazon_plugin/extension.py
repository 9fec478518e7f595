"""The :class:`XsaleAmazon` Flask extension."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, abort, current_app

from . import config as _config
from .babel import gettext
from .crypto import SecretBox, make_secret_box
from .models import Models, make_models

log = logging.getLogger(__name__)

EXTENSION_KEY = "xsale_amazon"


def _deny_all() -> bool:
    return False


class _State:
    """Per-app state, stored in ``app.extensions["xsale_amazon"]``."""

    def __init__(
        self,
        app: Flask,
        extension: XsaleAmazon,
        db: Any,
        models: Models,
        access_check: Callable[[], bool],
        current_user_name: Callable[[], str | None] | None,
        redis_connection: Any,
    ) -> None:
        self.extension = extension
        self.db = db
        self.models = models
        self.access_check = access_check
        self.current_user_name = current_user_name or (lambda: None)
        self.config = app.config.get_namespace(_config.PREFIX, lowercase=False)
        self.secret_box: SecretBox = make_secret_box(
            self.config["ENCRYPTION_KEY"], app.config.get("SECRET_KEY")
        )
        self._redis = redis_connection
        self._queue = None
        self._app_ref = app
        self.admin_views: dict[str, Any] = {}

    def cfg(self, key: str) -> Any:
        return self.config[key]

    def is_allowed(self) -> bool:
        try:
            return bool(self.access_check())
        except Exception:  # an access check that crashes must not open the door
            log.exception("xsale_amazon access_check raised; denying access")
            return False

    def require_access(self) -> None:
        if not self.is_allowed():
            abort(403)

    @property
    def redis(self) -> Any:
        if self._redis is None:
            url = self.config["REDIS_URL"]
            if not url:
                raise RuntimeError(
                    "xsale_amazon_plugin has no Redis: set XSALE_AMAZON_REDIS_URL or pass "
                    "init_app(redis=<connection>)."
                )
            from redis import Redis

            self._redis = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
        return self._redis

    @property
    def queue(self) -> Any:
        if self._queue is None:
            from rq import Queue

            from ._job_class import make_job_class

            self._queue = Queue(
                self.config["QUEUE"],
                connection=self.redis,
                job_class=make_job_class(self._app_ref),
                default_timeout=int(self.config["JOB_TIMEOUT"]),
            )
        return self._queue

    def product_attr(self, which: str) -> Any:
        """The host product's column for ``which`` in sku/ean/name/asin, or None."""
        name = self.config[f"PRODUCT_{which.upper()}_ATTR"]
        if not name:
            return None
        return getattr(self.models.product_model, name, None)


def get_state() -> _State:
    try:
        return current_app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            "xsale_amazon_plugin is not initialised on this app: call "
            "XsaleAmazon().init_app(app, db=db, admin=admin, product_model=Product)."
        ) from None


blueprint = Blueprint(
    "xsale_amazon",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static/xsale_amazon",
    url_prefix="/xsale-amazon",
)


@blueprint.app_template_global("_xa")
def _template_gettext(string: str, **variables: Any) -> str:
    return gettext(string, **variables)


class XsaleAmazon:
    """Amazon offers import and offer-to-product linking for a Flask-Admin back office.

    ::

        amazon = XsaleAmazon()
        amazon.init_app(app, db=db, admin=admin, product_model=Product,
                        access_check=lambda: current_user.is_admin)

    After ``init_app`` the model classes are available as ``amazon.models.AmazonIntegration``,
    ``amazon.models.AmazonOffer``, ``amazon.models.OfferProductLink`` and
    ``amazon.models.ImportRun``.
    """

    def __init__(self, app: Flask | None = None, **kwargs: Any) -> None:
        self.models: Models | None = None
        if app is not None:
            self.init_app(app, **kwargs)

    def init_app(
        self,
        app: Flask,
        *,
        db: Any,
        product_model: type,
        admin: Any = None,
        access_check: Callable[[], bool] | None = None,
        current_user_name: Callable[[], str | None] | None = None,
        redis: Any = None,
    ) -> None:
        """Bind the plugin to ``app``.

        :param db: the host's Flask-SQLAlchemy object; the plugin's tables join its metadata.
        :param product_model: the host's product model (any table name, any single-column
            primary key type).
        :param admin: the host's Flask-Admin; the plugin's views are added to it under the
            ``XSALE_AMAZON_ADMIN_CATEGORY`` menu unless ``XSALE_AMAZON_REGISTER_ADMIN`` is False.
        :param access_check: called with no arguments in a request; return True to let the
            current user use the plugin's views and actions. Without it every plugin page
            answers 403 (deny by default).
        :param current_user_name: returns the name recorded as "by whom" on links and runs.
        :param redis: a Redis connection to use instead of ``XSALE_AMAZON_REDIS_URL``.

        Config keys read (all prefixed ``XSALE_AMAZON_``; defaults in
        :mod:`xsale_amazon_plugin.config`): ``REDIS_URL``, ``QUEUE``, ``ENCRYPTION_KEY``,
        ``SPAPI_ENDPOINT``, ``LWA_ENDPOINT``, ``POLL_INTERVAL``, ``POLL_BACKOFF``,
        ``POLL_MAX_INTERVAL``, ``REPORT_DEADLINE``, ``REPORT_REUSE_WINDOW``, ``JOB_TIMEOUT``,
        ``BATCH_SIZE``, ``HEARTBEAT_TIMEOUT``, ``MAX_RETRIES``, ``HTTP_TIMEOUT``,
        ``DOWNLOAD_HOSTS``, ``INVALID_LINES_KEPT``, ``REGISTER_ADMIN``, ``ADMIN_CATEGORY``,
        ``PRODUCT_SKU_ATTR``, ``PRODUCT_EAN_ATTR``, ``PRODUCT_NAME_ATTR``,
        ``PRODUCT_ASIN_ATTR``, ``PRODUCT_ADMIN_ENDPOINT``, ``PAGE_SIZE``.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "XsaleAmazon is already initialised on this app; use the existing instance "
                "(app.extensions['xsale_amazon'].extension) instead of calling init_app twice."
            )
        _config.apply_defaults(app.config)
        models = make_models(db, product_model)
        self.models = models
        state = _State(
            app,
            self,
            db,
            models,
            access_check or _deny_all,
            current_user_name,
            redis,
        )
        app.extensions[EXTENSION_KEY] = state

        if "babel" not in app.extensions:
            # Flask-Admin needs an initialised Flask-Babel once flask-babel is installed.
            from flask_babel import Babel

            Babel(app)

        from . import api  # noqa: F401  (registers the JSON endpoints on the blueprint)

        app.register_blueprint(blueprint)
        from .cli import cli

        if "xsale-amazon" not in app.cli.commands:
            app.cli.add_command(cli)

        if admin is not None and state.cfg("REGISTER_ADMIN"):
            from .admin import register_views

            register_views(admin, state)
