"""The :class:`XsaleAmazon` Flask extension: binds the plugin to one app."""

from __future__ import annotations

import copy
import logging
import weakref
from collections.abc import Callable
from typing import Any

from flask import Flask, abort
from flask_babel import Babel
from redis import Redis
from rq import Queue

from ._job_class import make_job_class
from .admin import register_views
from .admin.api import blueprint
from .cli import cli
from .crypto import SecretBox, make_secret_box
from .models import Models, make_models
from .proxies import EXTENSION_KEY
from .scheduling.service import on_import_finished
from .scheduling.tick import TASK_NAME, sync_tick
from .settings import DEFAULTS, PREFIX, Settings
from .signals import import_finished
from .suggest.auto_refresh import TASK_NAME as SUGGEST_TASK_NAME
from .suggest.auto_refresh import after_import, periodic_check
from .worker import register_periodic

log = logging.getLogger(__name__)


def _deny_all() -> bool:
    return False


def _nobody() -> str | None:
    return None


class XsaleAmazon:
    """Amazon offers import and offer-to-product linking for a Flask-Admin back office.

    ::

        amazon = XsaleAmazon()
        amazon.init_app(app, db=db, admin=admin, product_model=Product,
                        access_check=lambda: current_user.is_admin)

    The instance itself is stored in ``app.extensions["xsale_amazon"]`` and reachable in a
    request, job or CLI command as :data:`xsale_amazon_plugin.current_amazon`. After
    ``init_app`` the model classes are ``amazon.models.AmazonIntegration``,
    ``amazon.models.AmazonOffer``, ``amazon.models.OfferProductLink`` and
    ``amazon.models.ImportRun``; ``amazon.settings`` holds the validated configuration.

    One instance serves one app. Calling ``init_app`` of an instance that is bound already
    with another app (an app factory called twice) binds a copy to that app: use
    ``current_amazon`` (or ``app.extensions["xsale_amazon"]``) to reach the right one.

    .. versionadded:: 0.1.0
    """

    db: Any
    models: Models
    settings: Settings
    secret_box: SecretBox

    def __init__(self, app: Flask | None = None, **kwargs: Any) -> None:
        self._app: weakref.ref[Flask] | None = None
        self._redis: Redis | None = None
        self._queue: Queue | None = None
        self.access_check: Callable[[], bool] = _deny_all
        self.current_user_name: Callable[[], str | None] = _nobody
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
        redis: Redis | None = None,
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

        Config keys read (all prefixed ``XSALE_AMAZON_``; types, defaults and meaning in
        :class:`xsale_amazon_plugin.settings.Settings`): ``REDIS_URL``, ``QUEUE``,
        ``ENCRYPTION_KEY``, ``SPAPI_ENDPOINT``, ``LWA_ENDPOINT``, ``POLL_INTERVAL``,
        ``POLL_BACKOFF``, ``POLL_MAX_INTERVAL``, ``REPORT_DEADLINE``, ``REPORT_REUSE_WINDOW``,
        ``JOB_TIMEOUT``, ``BATCH_SIZE``, ``HEARTBEAT_TIMEOUT``, ``MAX_RETRIES``,
        ``HTTP_TIMEOUT``, ``DOWNLOAD_HOSTS``, ``INVALID_LINES_KEPT``, ``REGISTER_ADMIN``,
        ``ADMIN_CATEGORY``, ``PRODUCT_SKU_ATTR``, ``PRODUCT_EAN_ATTR``, ``PRODUCT_NAME_ATTR``,
        ``PRODUCT_ASIN_ATTR``, ``PRODUCT_ADMIN_ENDPOINT``, ``PAGE_SIZE``, ``TIMEZONE``,
        ``SCHEDULE_TICK``, ``STALE_AFTER``, ``SCHEDULE_MAX_FAILURES``,
        ``AUTOLINK_INLINE_LIMIT``, ``AUTOLINK_BATCH``, ``SUGGEST_SKU_AFFIXES``,
        ``SUGGEST_BATCH_SIZE``, ``SUGGEST_AFTER_IMPORT`` (default True: an import that added,
        changed or restored offers starts the suggestion job of its integration) and
        ``SUGGEST_REFRESH_INTERVAL`` (default 600 s, 0 disables: how often one worker checks
        whether the product catalogue changed, e.g. with plain SQL, and then starts the
        suggestion job of every active integration with unlinked offers),
        ``SUGGEST_TRIGGERS`` (default True: triggers on the host's product table log changes
        of the columns the index uses, so the staleness check is one lookup),
        ``SUGGEST_FINGERPRINT_MAX_AGE`` (default 1800 s; SQLite and MySQL/MariaDB: the change
        log is trusted only while the fingerprint was verified less than this long ago, 0 for
        ever) and
        ``SUGGEST_INLINE_REFRESH_LIMIT`` (default 10000: a web request refreshes a stale
        product index itself only up to this many products; a larger refresh runs as the
        catalogue check job while the page says the index is being rebuilt); also
        ``SECRET_KEY`` when no encryption key is set.

        :raises SettingsError: a configuration value the plugin cannot use; the message names
            the key and the fix.
        :raises RuntimeError: the plugin is already initialised on ``app``.

        .. versionadded:: 0.1.0
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "XsaleAmazon is already initialised on this app; use the existing instance "
                "(xsale_amazon_plugin.current_amazon) instead of calling init_app twice."
            )
        if self._app is not None and self._app() is not app:
            bound = copy.copy(self)
            bound._redis = bound._queue = None
            bound._app = None
            bound.init_app(app, db=db, product_model=product_model, admin=admin,
                           access_check=access_check, current_user_name=current_user_name,
                           redis=redis)
            return

        for key, value in DEFAULTS.items():  # the effective values, visible in app.config
            app.config.setdefault(PREFIX + key, value)
        self.settings = Settings.from_config(app.config)
        self.secret_box = make_secret_box(self.settings.encryption_keys or None,
                                          app.config.get("SECRET_KEY"))
        self.db = db
        self.models = make_models(db, product_model)
        self.access_check = access_check or _deny_all
        self.current_user_name = current_user_name or _nobody
        self._redis = redis
        self._app = weakref.ref(app)
        app.extensions[EXTENSION_KEY] = self

        if "babel" not in app.extensions:
            # Flask-Admin needs an initialised Flask-Babel once flask-babel is installed.
            Babel(app)

        app.register_blueprint(blueprint)
        import_finished.connect(on_import_finished)
        import_finished.connect(after_import)
        register_periodic(TASK_NAME, sync_tick, self.settings.schedule_tick)
        if self.settings.suggest_refresh_interval > 0:
            # Runs in every worker; a Redis lock lets one worker per interval enqueue the check.
            register_periodic(SUGGEST_TASK_NAME, periodic_check,
                              self.settings.suggest_refresh_interval)
        if "xsale-amazon" not in app.cli.commands:
            app.cli.add_command(cli)

        if admin is not None and self.settings.register_admin:
            register_views(admin, self)

    # -- access ---------------------------------------------------------------------------
    def is_allowed(self) -> bool:
        """Whether the host's ``access_check`` lets the current user in (False if it raises)."""
        try:
            return bool(self.access_check())
        except Exception:  # an access check that crashes must not open the door
            log.exception("xsale_amazon access_check raised; denying access")
            return False

    def require_access(self) -> None:
        """Abort with 403 unless :meth:`is_allowed`."""
        if not self.is_allowed():
            abort(403)

    # -- queue ----------------------------------------------------------------------------
    @property
    def redis(self) -> Redis:
        """The Redis connection of the queue (from ``init_app(redis=)`` or ``REDIS_URL``)."""
        if self._redis is None:
            url = self.settings.redis_url
            if not url:
                raise RuntimeError(
                    "xsale_amazon_plugin has no Redis: set XSALE_AMAZON_REDIS_URL or pass "
                    "init_app(redis=<connection>)."
                )
            self._redis = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
        return self._redis

    @property
    def queue(self) -> Queue:
        """The RQ queue of import steps; its jobs run inside an app context of this app."""
        if self._queue is None:
            app = self._app() if self._app else None
            if app is None:
                raise RuntimeError("XsaleAmazon.init_app has not been called.")
            self._queue = Queue(
                self.settings.queue,
                connection=self.redis,
                job_class=make_job_class(app),
                default_timeout=self.settings.job_timeout,
            )
        return self._queue

    # -- host product ---------------------------------------------------------------------
    def product_attr(self, which: str) -> Any:
        """The host product's column for ``which`` in sku/ean/name/asin, or None."""
        name = getattr(self.settings, f"product_{which.lower()}_attr")
        if not name:
            return None
        return getattr(self.models.product_model, name, None)
