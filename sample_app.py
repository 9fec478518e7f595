"""An xSale-like host application showing xsale_amazon_plugin at work.

    python sample_app.py            # http://127.0.0.1:5000/admin/

With no ``XSALE_AMAZON_REDIS_URL`` in the environment it needs no services: SQLite in the
instance folder, an in-memory Redis (fakeredis) and a worker thread inside this process. With
``XSALE_AMAZON_REDIS_URL`` set it uses that Redis; run workers with
``flask --app sample_app xsale-amazon worker``. Amazon is the plugin's local SP-API emulator,
started here with demo listings (DE FBM + FBA, FR without the ASIN column) unless
``XSALE_AMAZON_SPAPI_ENDPOINT`` points elsewhere.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from flask import Flask, Response, redirect, request, session, url_for
from flask_admin import Admin, AdminIndexView, expose
from flask_admin.contrib.sqla import ModelView
from flask_admin.theme import Bootstrap4Theme
from flask_babel import Babel
from flask_sqlalchemy import SQLAlchemy

from xsale_amazon_plugin import XsaleAmazon
from xsale_amazon_plugin.settings import DEFAULTS, PREFIX

DEMO_CLIENT_ID = "amzn1.application-oa2-client.demo"
DEMO_CLIENT_SECRET = "demo-client-secret"
DEMO_REFRESH_TOKEN = "Atzr|demo-refresh-token"
DEFAULT_EMULATOR_PORT = 8765

db = SQLAlchemy()
amazon = XsaleAmazon()


class Product(db.Model):  # the host's own "towar"
    __tablename__ = "towar"
    id = db.Column(db.Integer, primary_key=True)
    code = db.Column(db.String(64), nullable=False, index=True)
    ean = db.Column(db.String(20), index=True)
    name = db.Column(db.String(255), nullable=False)

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class ProductView(ModelView):
    column_searchable_list = ("code", "ean", "name")


#: The demo's "start here" (the sample app is the host, so its texts are its own).
START_HERE = {
    "en": {
        "title": "Start here",
        "intro": "This demo back office runs the Amazon plugin against a local SP-API "
                 "emulator with demo listings.",
        "steps": [
            "Amazon → Integrations → edit “Amazon DE” → Test connection, then Import offers.",
            "Watch the import's live progress; Cancel import stops it safely.",
            "Amazon → Offers: filter, search, link offers to products (one by one, in bulk or "
            "automatically by SKU/EAN).",
            "Amazon → Suggestions: each unlinked offer beside the products most likely to be "
            "the same item; link them from the keyboard, or accept all high-confidence ones "
            "after a preview. Amazon → Mapping CSV: export the links, import a spreadsheet's.",
            "“Amazon FR” fails on purpose: Amazon's French report has no ASIN column; the run "
            "page says what to do in Seller Central.",
        ],
        "go": "Integrations",
        "switch": "Polski",
        "lang": "pl",
    },
    "pl": {
        "title": "Zacznij tutaj",
        "intro": "To demo zaplecza uruchamia wtyczkę Amazon z lokalnym emulatorem SP-API i "
                 "przykładowymi ofertami.",
        "steps": [
            "Amazon → Integracje → edytuj „Amazon DE” → Testuj połączenie, potem Importuj "
            "oferty.",
            "Obserwuj postęp importu na żywo; Anuluj import bezpiecznie go zatrzymuje.",
            "Amazon → Oferty: filtruj, szukaj, powiąż oferty z towarami (pojedynczo, zbiorczo "
            "lub automatycznie po SKU/EAN).",
            "Amazon → Sugestie: każda niepowiązana oferta obok towarów, które najpewniej są tym "
            "samym; powiąż je z klawiatury albo zaakceptuj wszystkie o wysokiej pewności po "
            "podglądzie. Amazon → Mapowania CSV: eksport powiązań, import z arkusza.",
            "„Amazon FR” celowo kończy się błędem: francuski raport Amazona nie ma kolumny "
            "ASIN; strona importu mówi, co zrobić w Seller Central.",
        ],
        "go": "Integracje",
        "switch": "English",
        "lang": "en",
    },
}

START_HERE_TEMPLATE = """{% extends 'admin/master.html' %}
{% block body %}
<div class="jumbotron py-4 mt-3" id="start-here">
  <h1 class="h3">{{ text.title }}</h1>
  <p class="lead">{{ text.intro }}</p>
  <ol>{% for step in text.steps %}<li class="mb-1">{{ step }}</li>{% endfor %}</ol>
  <a class="btn btn-primary" id="start-here-go"
     href="{{ url_for('xsale_amazon_integration.index_view') }}">{{ text.go }} →</a>
  <a class="btn btn-link" href="{{ url_for('set_language', code=text.lang) }}">{{ text.switch }}</a>
</div>
{% endblock %}"""

FAVICON = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
           b'<rect width="16" height="16" rx="3" fill="#232f3e"/>'
           b'<path d="M3 11c3 2 7 2 10 0" stroke="#ff9900" stroke-width="1.6" fill="none"/></svg>')


class StartHereView(AdminIndexView):
    @expose("/")
    def index(self) -> Any:
        lang = session.get("lang") or request.accept_languages.best_match(["pl", "en"]) or "en"
        return self.render("sample/start_here.html", text=START_HERE.get(lang, START_HERE["en"]))


def _env_config() -> dict[str, Any]:
    config: dict[str, Any] = {}
    for key in DEFAULTS:
        raw = os.environ.get(PREFIX + key)
        if raw is not None:
            try:
                config[PREFIX + key] = json.loads(raw)
            except ValueError:
                config[PREFIX + key] = raw
    return config


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.update(
        SECRET_KEY=os.environ.get("SECRET_KEY", "sample-app-not-secret"),
        SQLALCHEMY_DATABASE_URI=os.environ.get(
            "DATABASE_URL", "sqlite:///" + os.path.join(app.instance_path, "sample.sqlite")
        ),
        XSALE_AMAZON_REDIS_URL=None,
        XSALE_AMAZON_SPAPI_ENDPOINT=f"http://127.0.0.1:{DEFAULT_EMULATOR_PORT}",
        XSALE_AMAZON_LWA_ENDPOINT=f"http://127.0.0.1:{DEFAULT_EMULATOR_PORT}/auth/o2/token",
        XSALE_AMAZON_POLL_INTERVAL=2,
        XSALE_AMAZON_PRODUCT_SKU_ATTR="code",
        XSALE_AMAZON_PRODUCT_ADMIN_ENDPOINT="towar",
    )
    app.config.update(_env_config())
    app.config.update(config or {})

    def pick_locale() -> str:
        return session.get("lang") or request.accept_languages.best_match(["pl", "en"]) or "en"

    Babel(app, locale_selector=pick_locale)
    db.init_app(app)
    from jinja2 import ChoiceLoader, DictLoader

    app.jinja_loader = ChoiceLoader([DictLoader({"sample/start_here.html": START_HERE_TEMPLATE}),
                                     app.jinja_loader])
    admin = Admin(app, name="xSale demo", theme=Bootstrap4Theme(swatch="default"),
                  index_view=StartHereView())
    admin.add_view(ProductView(Product, db, name="Towary", endpoint="towar"))

    redis = None
    if not app.config["XSALE_AMAZON_REDIS_URL"]:
        import fakeredis  # demo only: no Redis configured

        redis = fakeredis.FakeRedis()
    # The whole integration: ~5 lines.
    amazon.init_app(
        app, db=db, admin=admin, product_model=Product,
        access_check=lambda: True,  # demo: everyone is an operator; use your auth here
        current_user_name=lambda: "demo",
        redis=redis,
    )

    @app.get("/")
    def index():
        return redirect(url_for("admin.index"))

    @app.get("/favicon.ico")
    def favicon():
        return Response(FAVICON, mimetype="image/svg+xml",
                        headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/lang/<code>")
    def set_language(code: str):
        session["lang"] = code if code in ("pl", "en") else "en"
        return redirect(request.referrer or url_for("admin.index"))

    with app.app_context():
        db.create_all()
        seed(app)
    return app


def seed(app: Flask) -> None:
    """Demo products and integrations (idempotent)."""
    from xsale_amazon_plugin.emulator.report_builder import demo_listings

    m = amazon.models
    if db.session.query(Product).count() == 0:
        for row in demo_listings(40, seed=7, marketplace="DE"):
            product_id = row.get("product_id") if row.get("product_id_type") == "4" else None
            db.session.add(Product(code=row["seller_sku"], ean=product_id,
                                   name=row["name"][:255]))
        db.session.commit()
    if db.session.query(m.AmazonIntegration).count() == 0:
        for name, marketplace, account_type in (
            ("Amazon DE", "DE", "FBM"),
            ("Amazon DE FBA", "DE", "FBA"),
            ("Amazon FR", "FR", "FBM"),
        ):
            integ = m.AmazonIntegration(name=name, marketplace=marketplace,
                                        account_type=account_type, seller_id="A3DEMOSELLER",
                                        lwa_client_id=DEMO_CLIENT_ID)
            integ.lwa_client_secret = DEMO_CLIENT_SECRET
            integ.refresh_token = DEMO_REFRESH_TOKEN
            db.session.add(integ)
        db.session.commit()


def demo_schedule(app: Flask, minutes: int = 2) -> None:
    """Import "Amazon DE FBA" every ``minutes`` minutes unless a schedule was set already."""
    from xsale_amazon_plugin.scheduling.service import get_schedule, set_schedule

    m = amazon.models
    with app.app_context():
        integ = db.session.query(m.AmazonIntegration).filter_by(name="Amazon DE FBA").first()
        if integ is not None and get_schedule(integ.id) is None:
            set_schedule(integ.id, "every", every_minutes=minutes, user="demo")
            print(f"Demo schedule: {integ.name} imports every {minutes} minutes "
                  "(Integrations → Schedule column).")


def seed_emulator(control: Any, *, rows: int = 60) -> None:
    """Demo listings in the emulator: DE (FBM and FBA rows) and FR without an ASIN column."""
    from xsale_amazon_plugin.amazon.marketplaces import get_marketplace
    from xsale_amazon_plugin.emulator.report_builder import demo_listings, render_report

    control.add_account(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REFRESH_TOKEN)
    de_rows = list(demo_listings(rows, seed=7, marketplace="DE"))
    de_rows += list(demo_listings(rows // 3, seed=8, marketplace="DE", channel="AMAZON_EU",
                                  sku_prefix="FBA-"))
    control.set_listings(get_marketplace("DE").marketplace_id,
                         render_report(de_rows, "eu_en"), charset="Cp1252", polls_until_done=2)
    fr_rows = list(demo_listings(rows // 2, seed=9, marketplace="FR", sku_prefix="FR-"))
    control.set_listings(get_marketplace("FR").marketplace_id,
                         render_report(fr_rows, "fr"), charset="Cp1252", polls_until_done=1)


def start_inline_worker(app: Flask, interval: float = 1.0) -> threading.Thread:
    """Run queued and scheduled import steps in a thread (demo without Redis/workers)."""
    from rq import SimpleWorker
    from rq.scheduler import RQScheduler
    from rq.timeouts import TimerDeathPenalty

    from xsale_amazon_plugin.importing.lifecycle import recover_stale_runs
    from xsale_amazon_plugin.scheduling.tick import sync_tick

    class ThreadWorker(SimpleWorker):
        death_penalty_class = TimerDeathPenalty

        def _install_signal_handlers(self) -> None:  # signals belong to the main thread
            pass

    with app.app_context():
        state = app.extensions["xsale_amazon"]
        queue = state.queue

    def loop() -> None:
        worker = ThreadWorker([queue], connection=queue.connection, job_class=queue.job_class)
        # WARNING: at INFO the scheduler logs "Acquired scheduler lock" on every round.
        scheduler = RQScheduler([queue], connection=queue.connection, logging_level="WARNING")
        while True:
            try:
                scheduler.acquire_locks()
                scheduler.enqueue_scheduled_jobs()
                scheduler.release_locks()
                worker.work(burst=True, logging_level="WARNING")
                with app.app_context():  # what make_worker's maintenance does for real workers
                    recover_stale_runs()
                    sync_tick()  # scheduled imports
            except Exception:
                logging.getLogger(__name__).exception("inline worker")
            time.sleep(interval)

    thread = threading.Thread(target=loop, name="xsale-amazon-inline-worker", daemon=True)
    thread.start()
    return thread


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--emulator-port", type=int, default=DEFAULT_EMULATOR_PORT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)

    config: dict[str, Any] = {}
    local_emulator = "XSALE_AMAZON_SPAPI_ENDPOINT" not in os.environ
    if local_emulator:
        emulator_url = f"http://127.0.0.1:{args.emulator_port}"
        config = {"XSALE_AMAZON_SPAPI_ENDPOINT": emulator_url,
                  "XSALE_AMAZON_LWA_ENDPOINT": emulator_url + "/auth/o2/token"}
    if PREFIX + "SCHEDULE_TICK" not in os.environ:
        config[PREFIX + "SCHEDULE_TICK"] = 5  # the demo schedule starts within seconds of its slot
    app = create_app(config)
    demo_schedule(app)
    endpoint = app.config["XSALE_AMAZON_SPAPI_ENDPOINT"]
    if local_emulator:
        from xsale_amazon_plugin.emulator.server import EmulatorControl, SpApiEmulator

        SpApiEmulator(port=args.emulator_port).start()
        with EmulatorControl(endpoint) as control:
            seed_emulator(control)
        print(f"Local SP-API emulator with demo listings on {endpoint}")
    if not app.config["XSALE_AMAZON_REDIS_URL"]:
        start_inline_worker(app)
        print("No XSALE_AMAZON_REDIS_URL: in-memory queue with an in-process worker.")
    print(f"Open http://{args.host}:{args.port}/admin/")
    app.run(host=args.host, port=args.port, debug=False, threaded=True)


if __name__ == "__main__":
    main()
