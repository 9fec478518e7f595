"""The wheel ships templates, static files and compiled catalogs; a host renders from it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HOST = textwrap.dedent('''
    import sys, xsale_amazon_plugin
    assert "site-packages" in xsale_amazon_plugin.__file__, xsale_amazon_plugin.__file__
    from flask import Flask
    from flask_admin import Admin
    from flask_babel import Babel
    from flask_sqlalchemy import SQLAlchemy
    from xsale_amazon_plugin import XsaleAmazon

    db = SQLAlchemy()

    class Towar(db.Model):
        id = db.Column(db.Integer, primary_key=True)
        sku = db.Column(db.String(20))

    app = Flask("wheelhost")
    app.config.update(SECRET_KEY="k", SQLALCHEMY_DATABASE_URI="sqlite://")
    Babel(app, locale_selector=lambda: "pl")
    db.init_app(app)
    admin = Admin(app)
    XsaleAmazon(app, db=db, admin=admin, product_model=Towar, access_check=lambda: True)
    with app.app_context():
        db.create_all()
    client = app.test_client()
    page = client.get("/admin/xsale-amazon/integrations/new/")
    assert page.status_code == 200, page.status_code
    text = page.get_data(as_text=True)
    assert "Połączenia" in text, "Polish catalog from the wheel"
    assert client.get("/xsale-amazon/static/xsale_amazon/js/run_progress.js").status_code == 200
    print("WHEEL-HOST-OK")
''')


@pytest.mark.slow
def test_wheel_installs_and_renders_admin(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), ROOT],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = dist.glob("xsale_amazon_plugin-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for required in (
        "xsale_amazon_plugin/templates/xsale_amazon/admin/integration_edit.html",
        "xsale_amazon_plugin/static/js/run_progress.js",
        "xsale_amazon_plugin/translations/pl/LC_MESSAGES/xsale_amazon.mo",
        "xsale_amazon_plugin/emulator/server.py",
    ):
        assert required in names, required
    assert not [n for n in names if n.startswith("tests/")]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = venv / "bin" / "pip"
    install = subprocess.run([str(pip), "install", "-q", str(wheel)], capture_output=True,
                             text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    script = tmp_path / "host.py"
    script.write_text(HOST)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(venv / "bin" / "python"), str(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert "WHEEL-HOST-OK" in out.stdout, out.stdout + out.stderr
