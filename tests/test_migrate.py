"""Flask-Migrate/Alembic autogenerate sees the plugin's tables in the host's metadata."""

from __future__ import annotations

import os

import sqlalchemy as sa
from flask import Flask
from flask_migrate import Migrate, migrate, upgrade
from flask_migrate import init as migrate_init
from flask_sqlalchemy import SQLAlchemy

from xsale_amazon_plugin import XsaleAmazon


def test_autogenerate_and_upgrade_create_plugin_tables(tmp_path):
    db = SQLAlchemy()

    class Towar(db.Model):
        __tablename__ = "towary"
        id = sa.Column(sa.String(36), primary_key=True)
        code = sa.Column(sa.String(40))

    app = Flask("migrated")
    app.config.update(SECRET_KEY="k",
                      SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/m.sqlite")
    db.init_app(app)
    XsaleAmazon(app, db=db, product_model=Towar, access_check=lambda: True)
    Migrate(app, db, directory=str(tmp_path / "migrations"))
    with app.app_context():
        migrate_init(directory=str(tmp_path / "migrations"))
        migrate(directory=str(tmp_path / "migrations"), message="initial")
        versions = os.listdir(tmp_path / "migrations" / "versions")
        script = "".join(
            (tmp_path / "migrations" / "versions" / v).read_text()
            for v in versions if v.endswith(".py")
        )
        for table in ("xsale_amazon_integration", "xsale_amazon_offer",
                      "xsale_amazon_offer_product_link", "xsale_amazon_import_run",
                      "xsale_amazon_import_row", "xsale_amazon_schedule",
                      "xsale_amazon_schedule_slot"):
            assert f"'{table}'" in script, table
        assert "['towary.id']" in script
        upgrade(directory=str(tmp_path / "migrations"))
        tables = set(sa.inspect(db.engine).get_table_names())
    assert {"towary", "xsale_amazon_offer", "xsale_amazon_import_run"} <= tables
