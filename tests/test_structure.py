"""The extension's shape: public API, typed settings checked at start, services that let the
caller own the transaction, views mounted by the host, no import cycle."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_admin import Admin
from flask_sqlalchemy import SQLAlchemy

import xsale_amazon_plugin
from xsale_amazon_plugin import (
    Settings,
    SettingsError,
    XsaleAmazon,
    current_amazon,
    link_offers,
    make_views,
    offers_linked,
    offers_unlinked,
    unlink_offers,
)

from .hostapp import make_host


def test_public_api_is_importable_from_the_package():
    for name in xsale_amazon_plugin.__all__:
        assert getattr(xsale_amazon_plugin, name) is not None, name


def _package_modules() -> list[str]:
    """Every module of the package (subpackages included), found on disk."""
    return sorted(info.name for info in pkgutil.walk_packages(
        xsale_amazon_plugin.__path__, prefix="xsale_amazon_plugin."))


def test_module_list_is_complete():
    modules = _package_modules()
    for name in ("xsale_amazon_plugin.importing.lifecycle", "xsale_amazon_plugin.admin.api",
                 "xsale_amazon_plugin.suggest.service", "xsale_amazon_plugin.scheduling.alerts",
                 "xsale_amazon_plugin.emulator.server", "xsale_amazon_plugin.cli"):
        assert name in modules


#: Imports each module as the first module of the package: everything of the package is
#: forgotten before the next one (third-party libraries stay loaded: their cost is not ours).
_EACH_ON_ITS_OWN = """
import importlib, sys, traceback
failures = []
for module in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m.split(".")[0] == "xsale_amazon_plugin"]:
        del sys.modules[loaded]
    try:
        importlib.import_module(module)
    except Exception:
        failures.append(module + ":\\n" + traceback.format_exc(limit=3))
print("\\n".join(failures))
sys.exit(1 if failures else 0)
"""


def test_every_module_imports_on_its_own():
    """No import cycle: each module can be the first one of the package to be imported.

    The layering of the modules is checked by ``lint-imports`` (the contract in setup.cfg)."""
    modules = ["xsale_amazon_plugin", *_package_modules()]
    result = subprocess.run([sys.executable, "-c", _EACH_ON_ITS_OWN, *modules],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_extension_instance_is_what_app_extensions_holds(db_url):
    host = make_host(db_url)
    assert host.app.extensions["xsale_amazon"] is host.amazon
    with host.app.app_context():
        assert current_amazon.settings is host.amazon.settings
        assert current_amazon.models is host.amazon.models


def test_current_amazon_outside_an_initialised_app_says_what_to_do():
    app = Flask("bare")
    with app.app_context(), pytest.raises(RuntimeError, match="init_app"):
        _ = current_amazon.settings


@pytest.mark.parametrize(("key", "value", "fragment"), [
    ("POLL_INTERVAL", "soon", "XSALE_AMAZON_POLL_INTERVAL must be a number"),
    ("HEARTBEAT_TIMEOUT", 0, "XSALE_AMAZON_HEARTBEAT_TIMEOUT must be a number greater than 0"),
    ("BATCH_SIZE", 2.5, "XSALE_AMAZON_BATCH_SIZE must be a whole number"),
    ("POLL_BACKOFF", 0.5, "XSALE_AMAZON_POLL_BACKOFF must be a multiplier of 1 or more"),
    ("REGISTER_ADMIN", "maybe", "XSALE_AMAZON_REGISTER_ADMIN must be True or False"),
    ("DOWNLOAD_HOSTS", 42, "XSALE_AMAZON_DOWNLOAD_HOSTS must be a list of strings"),
    ("REPORT_DEADLINE", float("nan"), "XSALE_AMAZON_REPORT_DEADLINE must be a finite number"),
])
def test_bad_setting_stops_the_app_at_start_naming_the_key(tmp_path, key, value, fragment):
    with pytest.raises(SettingsError) as info:
        make_host(f"sqlite:///{tmp_path}/h.sqlite", config={f"XSALE_AMAZON_{key}": value})
    assert fragment in str(info.value)


def test_settings_are_typed_and_strings_from_the_environment_convert(tmp_path):
    host = make_host(f"sqlite:///{tmp_path}/h.sqlite", config={
        "XSALE_AMAZON_POLL_INTERVAL": "12.5", "XSALE_AMAZON_BATCH_SIZE": "1000",
        "XSALE_AMAZON_REGISTER_ADMIN": "true",
        "XSALE_AMAZON_DOWNLOAD_HOSTS": "example.test, amazonaws.com",
    })
    settings = host.amazon.settings
    assert settings.poll_interval == 12.5 and isinstance(settings.batch_size, int)
    assert settings.download_hosts == ("example.test", "amazonaws.com")
    assert settings.register_admin is True
    with pytest.raises(SettingsError, match="XSALE_AMAZON_PAGE_SIZE"):
        settings.replace(page_size=-1)
    assert Settings().queue == "xsale_amazon"


def _offers(host, n=2):
    (product_id,) = host.add_products([{"sku": "P-1", "ean": "4006381333931", "name": "Mug"}])
    integ = host.add_integration()
    m = host.models
    with host.app.app_context():
        offers = [m.AmazonOffer(integration_id=integ, seller_sku=f"S-{i}") for i in range(n)]
        host.db.session.add_all(offers)
        host.db.session.commit()
        return product_id, [o.id for o in offers]


def test_link_with_commit_false_is_the_callers_transaction(db_url):
    host = make_host(db_url)
    product_id, ids = _offers(host)
    link = host.models.OfferProductLink
    sent = []

    def receiver(sender, **kwargs):
        sent.append(kwargs)

    offers_linked.connect(receiver)
    offers_unlinked.connect(receiver)
    try:
        with host.app.app_context():
            session = host.db.session
            assert link_offers(ids, product_id, commit=False) == 2
            assert sent == []  # nothing is final before the caller commits
            session.rollback()
            assert session.execute(sa.select(sa.func.count()).select_from(link)).scalar() == 0
            assert sent == []  # rolled back: no signal, ever
            session.commit()
            assert sent == []

            assert link_offers(ids[:1], product_id, commit=False) == 1
            session.commit()
            assert [s["offer_ids"] for s in sent] == [[ids[0]]]
            assert session.execute(sa.select(sa.func.count()).select_from(link)).scalar() == 1

            assert unlink_offers(ids, commit=False) == 1
            session.commit()
            assert sent[-1]["offer_ids"] == [ids[0]]
            assert session.execute(sa.select(sa.func.count()).select_from(link)).scalar() == 0
    finally:
        offers_linked.disconnect(receiver)
        offers_unlinked.disconnect(receiver)


def test_rerun_works_when_the_host_mounts_the_views_itself(tmp_path, amazon, redis_conn):
    """make_views path: Re-run on a run's page used to answer 500 (state.admin_views)."""
    from .hostapp import CLIENT_ID, CLIENT_SECRET, REDIS_URL, REFRESH_TOKEN

    db = SQLAlchemy()

    class Product(db.Model):
        id = sa.Column(sa.Integer, primary_key=True)
        sku = sa.Column(sa.String(20))

    app = Flask("placed_rerun")
    app.config.update(SECRET_KEY="x", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/p.db",
                      XSALE_AMAZON_REGISTER_ADMIN=False, XSALE_AMAZON_REDIS_URL=REDIS_URL,
                      XSALE_AMAZON_QUEUE=f"xa-placed-{tmp_path.name}",
                      XSALE_AMAZON_PRODUCT_EAN_ATTR=None, XSALE_AMAZON_PRODUCT_NAME_ATTR=None,
                      WTF_CSRF_ENABLED=False)
    db.init_app(app)
    admin = Admin(app)
    amazon_ext = XsaleAmazon(app, db=db, product_model=Product, access_check=lambda: True)
    for view in make_views(amazon_ext):
        admin.add_view(view)
    m = amazon_ext.models
    with app.app_context():
        db.create_all()
        integ = m.AmazonIntegration(name="DE", marketplace="DE", account_type="FBM",
                                    seller_id="A1SELLER", lwa_client_id=CLIENT_ID)
        integ.lwa_client_secret, integ.refresh_token = CLIENT_SECRET, REFRESH_TOKEN
        db.session.add(integ)
        db.session.commit()
        old = m.ImportRun(integration_id=integ.id, status="failed", stage="done")
        db.session.add(old)
        db.session.commit()
        old_id = old.id
    client = app.test_client()
    with client.session_transaction():
        pass
    page = client.get(f"/admin/xsale-amazon/runs/details/?id={old_id}")
    assert page.status_code == 200
    token = page.get_data(as_text=True).split('name="csrf_token" type="hidden" value="')[1]
    token = token.split('"')[0]
    response = client.post(f"/admin/xsale-amazon/runs/rerun/{old_id}/",
                           data={"csrf_token": token})
    assert response.status_code == 302
    with app.app_context():
        runs = db.session.execute(sa.select(m.ImportRun).order_by(m.ImportRun.id)).scalars().all()
        assert len(runs) == 2 and runs[1].trigger == "ui"
        assert f"id={runs[1].id}" in response.location
        amazon_ext.queue.empty()
