"""The CLI against the emulator with real RQ worker processes and real Redis/PostgreSQL."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from .processes import engine_of, flask, offers_of


def test_import_wait_succeeds_and_failure_exits_nonzero(cli_env, cli_worker):
    cli_worker()
    ok = flask(cli_env, "xsale-amazon", "import", "1", "--wait", "--timeout", "90")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Succeeded" in ok.stdout and "created" in ok.stdout
    engine = engine_of(cli_env)
    assert len(offers_of(engine, 1)) > 0
    fr = flask(cli_env, "xsale-amazon", "import", "3", "--wait", "--timeout", "90")
    assert fr.returncode == 1
    assert "asin1" in fr.stderr and "Inventory Reports" in fr.stderr
    assert offers_of(engine, 3) == set()
    engine.dispose()


def test_second_import_is_refused_while_one_runs(cli_env):
    # No worker: --queue-only leaves it queued for one started later.
    first = flask(cli_env, "xsale-amazon", "import", "2", "--queue-only")
    assert first.returncode == 0, first.stderr
    second = flask(cli_env, "xsale-amazon", "import", "2")
    assert second.returncode != 0
    assert "already running" in second.stderr


def test_autolink_command(cli_env, cli_worker):
    cli_worker()
    assert flask(cli_env, "xsale-amazon", "import", "1", "--wait").returncode == 0
    out = flask(cli_env, "xsale-amazon", "autolink", "1", "--by", "sku")
    assert out.returncode == 0, out.stderr
    linked = int(out.stdout.split("linked ")[1].split(",")[0])
    assert linked > 0
    counts = [int(n) for n in re.findall(r"\d+", out.stdout.splitlines()[0])]
    assert counts[0] == sum(counts[1:]), out.stdout  # checked = linked + ambiguous + ...
    again = flask(cli_env, "xsale-amazon", "autolink", "1", "--by", "sku")
    assert "linked 0," in again.stdout and f"already linked {linked}" in again.stdout


@pytest.fixture
def memory_queue_env(cli_env: dict[str, str]) -> dict[str, str]:
    """The sample app as README command 1 runs it: no Redis, an in-memory queue."""
    env = dict(cli_env)
    env.pop("XSALE_AMAZON_REDIS_URL")
    return env


def _runs(env: dict[str, str]) -> list[tuple]:
    engine = engine_of(env)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(
                "SELECT id, status, active_lock FROM xsale_amazon_import_run ORDER BY id")).all())
    finally:
        engine.dispose()


def test_cli_import_on_the_in_memory_queue_refuses_or_runs_inline(memory_queue_env):
    env = memory_queue_env
    refused = flask(env, "xsale-amazon", "import", "1", "--wait", "--timeout", "15")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "--inline" in refused.stderr and "in memory" in refused.stderr
    assert "goes on in the background" not in refused.stdout + refused.stderr
    assert _runs(env) == [], "a refused CLI import must leave no run behind"

    inline = flask(env, "xsale-amazon", "import", "1", "--inline", "--timeout", "90")
    assert inline.returncode == 0, inline.stdout + inline.stderr
    assert "Succeeded" in inline.stdout and "created" in inline.stdout
    assert [(status, lock) for _id, status, lock in _runs(env)] == [("succeeded", None)]
    engine = engine_of(env)
    assert len(offers_of(engine, 1)) > 0
    engine.dispose()


def test_cli_import_without_a_worker_refuses_clearly(cli_env):
    refused = flask(cli_env, "xsale-amazon", "import", "1")
    assert refused.returncode == 1
    assert "No RQ worker is listening" in refused.stderr
    assert "flask xsale-amazon worker" in refused.stderr
    assert _runs(cli_env) == []


def test_cli_cancel_ends_the_run_and_frees_the_integration(cli_env):
    queued = flask(cli_env, "xsale-amazon", "import", "2", "--queue-only")
    assert queued.returncode == 0, queued.stderr
    run_id = _runs(cli_env)[0][0]
    cancelled = flask(cli_env, "xsale-amazon", "cancel", str(run_id))
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"#{run_id} cancelled" in cancelled.stdout
    assert _runs(cli_env) == [(run_id, "cancelled", None)]
    again = flask(cli_env, "xsale-amazon", "cancel", str(run_id))
    assert again.returncode == 1 and "already ended" in again.stderr
    missing = flask(cli_env, "xsale-amazon", "cancel", "999999")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    # The integration can import again at once.
    next_run = flask(cli_env, "xsale-amazon", "import", "2", "--queue-only")
    assert next_run.returncode == 0, next_run.stderr
