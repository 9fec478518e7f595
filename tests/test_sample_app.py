"""`python sample_app.py` works with no services: fakeredis, in-process worker, emulator."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx

from .processes import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))



def test_sample_app_runs_an_import_without_services(tmp_path):
    port, emulator_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XSALE_AMAZON_")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path}/sample.sqlite"
    # Fewer than the demo's 40 products: a reload of the catalogue is a rebuild in a job.
    env["XSALE_AMAZON_SUGGEST_INLINE_REFRESH_LIMIT"] = "5"
    proc = subprocess.Popen(
        [sys.executable, "sample_app.py", "--port", str(port), "--emulator-port",
         str(emulator_port)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10, follow_redirects=True) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    index = client.get("/admin/")
                    break
                except httpx.TransportError:
                    assert proc.poll() is None, proc.stdout.read()
                    assert time.monotonic() < deadline, "sample app did not start"
                    time.sleep(0.3)
            assert "Amazon" in index.text and "Integrations" in index.text
            assert 'id="start-here"' in index.text and "Start here" in index.text
            favicon = client.get("/favicon.ico")
            assert favicon.status_code == 200 and favicon.headers["content-type"].startswith(
                "image/")
            edit = client.get("/admin/xsale-amazon/integrations/edit/?id=1").text
            token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', edit).group(1)
            run_page = client.post("/admin/xsale-amazon/integrations/import/1/",
                                   data={"csrf_token": token})
            run_id = int(str(run_page.url).split("id=")[1])
            for _ in range(240):
                status = client.get(f"/xsale-amazon/runs/{run_id}.json").json()
                if not status["active"]:
                    break
                time.sleep(0.25)
            assert status["status"] == "succeeded", status
            assert status["counts"]["created"] > 0
            offers = client.get("/admin/xsale-amazon/offers/").text
            assert "Offers without a linked product" in offers
            _index_rebuild_runs_in_the_demo_worker(client, tmp_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    output = proc.stdout.read()
    # The in-process scheduler took its lock on every round and said so at INFO.
    assert "Acquired scheduler lock" not in output, output[-2000:]
    assert " 404 " not in output, "no 404 (e.g. favicon) while using the demo"


def _index_rebuild_runs_in_the_demo_worker(client: httpx.Client, tmp_path) -> None:
    """No Redis, no worker process: the in-process worker of the demo runs the rebuild the
    link dialog asks for, and the suggestions appear."""
    import sqlite3

    with sqlite3.connect(tmp_path / "sample.sqlite") as db:
        db.execute("UPDATE towar SET name = name || ' (2026)'")  # the host reloads its catalogue
        offer_id = db.execute("SELECT min(id) FROM xsale_amazon_offer").fetchone()[0]
    url = f"/xsale-amazon/offers/{offer_id}/suggestions.json"
    answer = client.get(url)
    assert answer.status_code == 202, answer.text
    notice = answer.json()["rebuilding"]
    assert "being rebuilt (about 40 products)" in notice["message"]
    for _ in range(240):
        state = client.get(notice["status_url"]).json()
        if not state["active"]:
            break
        time.sleep(0.25)
    assert state["status"] == "finished" and state["done"] == state["total"] == 40, state
    answer = client.get(url)
    assert answer.status_code == 200 and answer.json()["suggestions"], answer.text


def test_readme_commands_work_without_an_activated_venv():
    """Commands in README code blocks name the venv's executables (`.venv/bin/…`): a bare
    `flask …` or `python -m …` fails for a reader who did not activate the venv."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    bare = [line for block in blocks for line in block.splitlines()
            if re.match(r"\s*(flask|python|pytest|pip|mypy|ruff)\b", line)]
    assert bare == [], bare
