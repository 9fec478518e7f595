"""Foundation: init_app variants, models in the host's metadata, admin pages, access, CSRF."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from xsale_amazon_plugin import XsaleAmazon, make_models
from xsale_amazon_plugin.settings import DEFAULTS

from .hostapp import make_host

PAGES = (
    "/admin/xsale-amazon/integrations/",
    "/admin/xsale-amazon/integrations/new/",
    "/admin/xsale-amazon/offers/",
    "/admin/xsale-amazon/runs/",
)


@pytest.mark.parametrize("pk", ["int", "uuid", "str"])
def test_product_pk_types_and_table_name(db_url, pk):
    host = make_host(db_url, pk=pk, table=f"towar_{pk}")
    m = host.models
    fk = next(iter(m.OfferProductLink.__table__.c.product_id.foreign_keys))
    assert fk.target_fullname == f"towar_{pk}.id"
    assert type(m.OfferProductLink.__table__.c.product_id.type) is type(
        host.Product.__table__.c.id.type
    )
    (product_id,) = host.add_products([{"sku": "A-1", "ean": "4006381333931", "name": "Mug"}])
    integ = host.add_integration()
    with host.app.app_context():
        offer = m.AmazonOffer(integration_id=integ, seller_sku="A-1", name="Mug")
        host.db.session.add(offer)
        host.db.session.flush()
        host.db.session.add(m.OfferProductLink(offer_id=offer.id, product_id=product_id))
        host.db.session.commit()
        link = host.db.session.execute(sa.select(m.OfferProductLink)).scalar_one()
        assert link.product.sku == "A-1"
        assert link.offer.link is link


def test_models_live_in_host_metadata(db_url):
    host = make_host(db_url)
    tables = set(host.db.metadata.tables)
    assert {"xsale_amazon_integration", "xsale_amazon_offer", "xsale_amazon_offer_product_link",
            "xsale_amazon_import_run", "xsale_amazon_import_row"} <= tables
    with host.app.app_context():
        names = set(sa.inspect(host.db.engine).get_table_names())
    assert "xsale_amazon_offer" in names
    assert host.amazon.models.AmazonOffer is make_models(host.db, host.Product).AmazonOffer


def test_double_init_is_refused(db_url):
    host = make_host(db_url)
    with pytest.raises(RuntimeError, match="already initialised"):
        XsaleAmazon().init_app(host.app, db=host.db, product_model=host.Product)


def test_config_defaults_are_prefixed(db_url):
    host = make_host(db_url)
    for key in DEFAULTS:
        assert "XSALE_AMAZON_" + key in host.app.config
    assert host.app.config["XSALE_AMAZON_QUEUE"].startswith("xa-test-")


def test_make_models_refuses_a_second_product_model():
    db = SQLAlchemy()

    class Item(db.Model):
        id = sa.Column(sa.Integer, primary_key=True)

    class Other(db.Model):
        id = sa.Column(sa.Integer, primary_key=True)

    make_models(db, Item)
    with pytest.raises(RuntimeError, match="same product model"):
        make_models(db, Other)


@pytest.mark.parametrize("csrf", [False, True])
@pytest.mark.parametrize("babel", [False, True])
def test_admin_pages_render_and_create_integration(db_url, redis_conn, csrf, babel):
    host = make_host(db_url, csrf=csrf, babel=babel)
    client = host.app.test_client()
    for page in PAGES:
        response = client.get(page)
        assert response.status_code == 200, page
        assert "Amazon" in response.get_data(as_text=True)
    page = client.get("/admin/xsale-amazon/integrations/new/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page
    )
    assert token, "the create form carries a CSRF token"
    assert page.count('name="csrf_token"') == 1
    data = {
        "csrf_token": token.group(1),
        "name": "Amazon PL",
        "marketplace": "PL",
        "account_type": "FBM",
        "seller_id": "A2SELLER",
        "lwa_client_id": "amzn1.application-oa2-client.x",
        "new_lwa_client_secret": "very-secret-value",
        "new_refresh_token": "Atzr|refresh-value",
        "active": "y",
    }
    response = client.post("/admin/xsale-amazon/integrations/new/", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    with host.app.app_context():
        integ = host.db.session.execute(sa.select(host.models.AmazonIntegration)).scalar_one()
        assert integ.lwa_client_secret == "very-secret-value"
        assert integ.refresh_token == "Atzr|refresh-value"
        integ_id = integ.id
    # Without a token the POST is refused and nothing is created.
    bad = dict(data, csrf_token="forged", name="Forged")
    client.post("/admin/xsale-amazon/integrations/new/", data=bad)
    with host.app.app_context():
        count = host.db.session.execute(
            sa.select(sa.func.count()).select_from(host.models.AmazonIntegration)
        ).scalar_one()
    assert count == 1
    edit = client.get(f"/admin/xsale-amazon/integrations/edit/?id={integ_id}").get_data(
        as_text=True
    )
    assert "very-secret-value" not in edit and "Atzr|refresh-value" not in edit
    assert "Service actions" in edit and "Import offers" in edit


def test_blank_secret_on_edit_keeps_stored_value(db_url, redis_conn):
    host = make_host(db_url)
    integ_id = host.add_integration()
    client = host.app.test_client()
    page = client.get(f"/admin/xsale-amazon/integrations/edit/?id={integ_id}").get_data(
        as_text=True
    )
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post(
        f"/admin/xsale-amazon/integrations/edit/?id={integ_id}",
        data={"csrf_token": token, "name": "Renamed", "marketplace": "DE", "account_type": "FBM",
              "seller_id": "A1SELLER", "lwa_client_id": "amzn1.application-oa2-client.cid",
              "new_lwa_client_secret": "",
              "new_refresh_token": "", "active": "y"},
    )
    assert response.status_code == 302
    with host.app.app_context():
        integ = host.db.session.get(host.models.AmazonIntegration, integ_id)
        assert integ.name == "Renamed"
        assert integ.lwa_client_secret == "test-client-secret-Zq8"
        assert integ.refresh_token == "Atzr|test-refresh-token-Xy7"


def test_denied_user_gets_403_everywhere(db_url, redis_conn):
    host = make_host(db_url, access=False)
    client = host.app.test_client()
    integ = host.add_integration()
    for page in PAGES + (
        f"/admin/xsale-amazon/integrations/edit/?id={integ}",
        "/xsale-amazon/products/search?q=a",
        "/xsale-amazon/runs/1.json",
        "/admin/xsale-amazon/runs/details/?id=1",
    ):
        assert client.get(page).status_code == 403, page
    for page in (f"/admin/xsale-amazon/integrations/import/{integ}/",
                 "/admin/xsale-amazon/integrations/action/",
                 "/admin/xsale-amazon/offers/link/", "/admin/xsale-amazon/offers/unlink/",
                 "/admin/xsale-amazon/offers/action/", "/admin/xsale-amazon/runs/rerun/1/"):
        assert client.post(page, data={}).status_code == 403, page
    index = client.get("/admin/").get_data(as_text=True)
    assert "xsale-amazon/offers" not in index


def test_access_check_exception_denies(db_url, redis_conn):
    host = make_host(db_url)

    def boom() -> bool:
        raise RuntimeError("auth backend down")

    host.state.access_check = boom
    assert host.app.test_client().get(PAGES[0]).status_code == 403


def test_plugin_views_can_be_placed_by_host(tmp_path):
    from flask_admin import Admin

    from xsale_amazon_plugin.admin import make_views

    db = SQLAlchemy()

    class Product(db.Model):
        id = sa.Column(sa.Integer, primary_key=True)
        sku = sa.Column(sa.String(20))

    app = Flask("placed")
    app.config.update(SECRET_KEY="x", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/p.db",
                      XSALE_AMAZON_REGISTER_ADMIN=False)
    db.init_app(app)
    admin = Admin(app)
    amazon = XsaleAmazon(app, db=db, admin=admin, product_model=Product,
                         access_check=lambda: True)
    assert not any(getattr(v, "endpoint", "").startswith("xsale_amazon") for v in admin._views)
    for view in make_views(app.extensions["xsale_amazon"], category="Marketplaces"):
        admin.add_view(view)
    with app.app_context():
        db.create_all()
    assert app.test_client().get("/admin/xsale-amazon/offers/").status_code == 200
    assert amazon.models.ImportRun.__tablename__ == "xsale_amazon_import_run"


def test_same_endpoint_names_as_host_do_not_collide(tmp_path):
    """A host view on its own model named like ours keeps working."""
    from flask_admin import Admin
    from flask_admin.contrib.sqla import ModelView

    db = SQLAlchemy()

    class AmazonOffer(db.Model):  # the host happens to have a model of this name
        __tablename__ = "host_amazon_offer"
        id = sa.Column(sa.Integer, primary_key=True)

    class Product(db.Model):
        id = sa.Column(sa.Integer, primary_key=True)

    app = Flask("collide")
    app.config.update(SECRET_KEY="x", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/c.db")
    db.init_app(app)
    admin = Admin(app)
    admin.add_view(ModelView(AmazonOffer, db))
    XsaleAmazon(app, db=db, admin=admin, product_model=Product, access_check=lambda: True)
    with app.app_context():
        db.create_all()
    client = app.test_client()
    assert client.get("/admin/amazonoffer/").status_code == 200
    assert client.get("/admin/xsale-amazon/offers/").status_code == 200
