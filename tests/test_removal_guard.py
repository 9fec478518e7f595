"""Never remove what the report did not prove gone (issue 13).

Hostile report files served through the emulator (real HTTP, real RQ over Redis) to an
integration holding live, partly linked offers, on PostgreSQL and SQLite. Each file must end
failed with nothing changed, succeeded without removing more than the guard allows, or held
for confirmation - and a confirmed hold applies exactly what was staged.

``XSALE_GUARD_OFFERS`` sets the catalogue size (default 1,500; the issue's figures use 13,333).
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from xsale_amazon_plugin.amazon.marketplaces import get_marketplace
from xsale_amazon_plugin.emulator.report_builder import demo_listings, render_report

from .conftest import drain
from .test_import import offers, publish, run_import, snapshot

DE = get_marketplace("DE").marketplace_id
OFFERS = int(os.environ.get("XSALE_GUARD_OFFERS", "1500"))
LINK_EVERY = 13  # 1,025 of 13,333 offers were linked in the campaign


@pytest.fixture
def catalogue(amazon_host: Any, amazon: Any) -> dict[str, Any]:
    """An integration after a successful first import of OFFERS offers, every 13th linked."""
    from xsale_amazon_plugin.linking.links import link_offers

    rows = list(demo_listings(OFFERS, seed=13, marketplace="DE"))
    publish(amazon, "DE", rows)
    integ = amazon_host.add_integration("DE", "FBM")
    first = run_import(amazon_host, integ)
    assert (first.status, first.count_created) == ("succeeded", OFFERS), first.error_message
    (pid,) = amazon_host.add_products([{"sku": "P-GUARD", "name": "Linked"}])
    stored = offers(amazon_host, integ)
    with amazon_host.app.app_context():
        linked = link_offers([o.id for o in list(stored.values())[::LINK_EVERY]], pid)
    assert linked == len(range(0, OFFERS, LINK_EVERY))
    return {"host": amazon_host, "integ": integ, "rows": rows, "before": snapshot(amazon_host)}


def _report(rows: list[dict], encoding: str = "cp1252") -> bytes:
    return render_report(rows, "eu_en", encoding=encoding)


def _cut_mid_line(rows: list[dict]) -> bytes:
    full = _report(rows)
    cut = full[: min(200_000, len(full) * 2 // 5)]
    while cut.endswith(b"\n") or cut.rsplit(b"\n", 1)[-1].count(b"\t") > 10:
        cut = cut[:-1]  # end inside the first columns of a line, like a cut download
    return cut


def _nul_every_third(rows: list[dict]) -> bytes:
    header, *lines = _report(rows[:50]).rstrip(b"\n").split(b"\n")
    damaged = [line.replace(b"\t", b"\x00") + b"\textra\tcolumns" if i % 3 == 0 else line
               for i, line in enumerate(lines)]
    return b"\n".join([header, *damaged]) + b"\n"


def _huge_name(rows: list[dict]) -> bytes:
    return _report([dict(rows[0], name="N" * (8 << 20))])


#: The issue's four damaged files: how each is served and how it must end.
TABLE: dict[str, dict[str, Any]] = {
    "first_200kb_cut_mid_line_claims_gzip": {
        "content": _cut_mid_line, "charset": "Cp1252", "gzip": False, "claim_gzip": True,
        "status": "failed", "code": "truncated", "text": "cut off",
    },
    "50_rows_every_third_nul_for_tabs": {
        "content": _nul_every_third, "charset": "Cp1252",
        "status": "failed", "code": "too_many_invalid", "text": "17 of the 50 lines",
    },
    "1_row_with_8mb_item_name": {
        "content": _huge_name, "charset": "Cp1252",
        "status": "failed", "code": "no_valid_lines", "text": "None of the 1 lines",
    },
    "50_rows_cp1252_declared_utf8": {
        "content": lambda rows: _report(rows[:50]), "charset": "utf8",
        "status": "held", "code": "removal_held", "text": f"remove {OFFERS - 50:,} of",
    },
}


def _serve(amazon: Any, case: dict[str, Any], rows: list[dict]) -> bytes:
    content = case["content"](rows)
    amazon.set_listings(DE, content, charset=case["charset"], gzip=case.get("gzip", True),
                        claim_gzip=case.get("claim_gzip", False))
    return content


def _run(host: Any, run_id: int) -> Any:
    with host.app.app_context():
        run = host.db.session.get(host.models.ImportRun, run_id)
        host.db.session.expunge(run)
    return run


def _staged(host: Any, run_id: int) -> int:
    m = host.models
    with host.app.app_context():
        return host.db.session.execute(
            sa.select(sa.func.count()).select_from(m.import_row)
            .where(m.import_row.c.run_id == run_id)).scalar_one()


@pytest.mark.parametrize("name", list(TABLE))
def test_damaged_reports_fail_or_are_held_with_nothing_changed(catalogue: dict[str, Any],
                                                                amazon: Any, name: str) -> None:
    host, integ, before = catalogue["host"], catalogue["integ"], catalogue["before"]
    case = TABLE[name]
    content = _serve(amazon, case, catalogue["rows"])
    run = run_import(host, integ)
    print(f"\n{name}: {len(content)} bytes -> {run.status} {run.error_code}: {run.error_message}")
    assert (run.status, run.error_code) == (case["status"], case["code"]), run.error_message
    assert case["text"] in run.error_message
    assert snapshot(host) == before  # no offer, no link changed
    assert not any(o.removed_at for o in offers(host, integ).values())
    if run.status == "failed":
        assert _staged(host, run.id) == 0
    if name == "50_rows_every_third_nul_for_tabs":
        assert "2, 5, 8, 11, 14" in run.error_message and "damaged" in run.error_message
    if name == "50_rows_cp1252_declared_utf8":
        with pytest.raises(UnicodeDecodeError):
            content.decode("utf-8")  # the case is real: UTF-8 cannot read it
        assert (run.declared_charset, run.encoding, run.count_invalid) == ("utf8", "cp1252", 0)
        assert run.count_removed == OFFERS - 50 and run.count_unchanged == 50
        assert run.error_params["live"] == OFFERS
        assert run.active_lock is None and run.staged_rows == _staged(host, run.id) == 50


def test_confirmed_hold_applies_exactly_what_was_staged(catalogue: dict[str, Any],
                                                        amazon: Any) -> None:
    from xsale_amazon_plugin.importing.lifecycle import confirm_run

    host, integ, rows = catalogue["host"], catalogue["integ"], catalogue["rows"]
    _serve(amazon, TABLE["50_rows_cp1252_declared_utf8"], rows)
    held = run_import(host, integ)
    assert held.status == "held"
    preview = held.counts
    # Amazon now serves something else: the confirmation must not download again.
    publish(amazon, "DE", rows[:10])
    downloads = sum(r["operation"] == "download" for r in amazon.requests)
    with host.app.app_context():
        confirm_run(held.id, "operator@example.com")
    run = drain(host, held.id)
    assert run.status == "succeeded", run.error_message
    assert run.counts == preview  # same counts as announced
    assert sum(r["operation"] == "download" for r in amazon.requests) == downloads
    assert (run.confirmed_by, run.staged_rows, run.error_code) == (
        "operator@example.com", None, None)
    stored = offers(host, integ)
    live = {sku for sku, o in stored.items() if o.removed_at is None}
    assert live == {r["seller_sku"] for r in rows[:50]}
    assert len(stored) == OFFERS  # soft removal only
    assert snapshot(host)[1] == catalogue["before"][1]  # every link kept
    assert _staged(host, run.id) == 0


def test_discarded_hold_changes_nothing_and_frees_the_staging(catalogue: dict[str, Any],
                                                              amazon: Any) -> None:
    from xsale_amazon_plugin.importing.lifecycle import HoldNotPending, confirm_run, discard_run

    host, integ = catalogue["host"], catalogue["integ"]
    _serve(amazon, TABLE["50_rows_cp1252_declared_utf8"], catalogue["rows"])
    held = run_import(host, integ)
    with host.app.app_context():
        assert discard_run(held.id, "operator@example.com")
        assert not discard_run(held.id, "operator@example.com")  # only once
        with pytest.raises(HoldNotPending):
            confirm_run(held.id, "late@example.com")
    run = _run(host, held.id)
    assert (run.status, run.error_code, run.count_removed) == ("discarded", "removal_discarded", 0)
    assert f"would have removed {OFFERS - 50:,} of {OFFERS:,}" in run.error_message
    assert "operator@example.com" in run.error_message
    assert _staged(host, held.id) == 0
    assert snapshot(host) == catalogue["before"]


def test_invalid_lines_keep_their_offers(catalogue: dict[str, Any], amazon: Any) -> None:
    """Lines rejected as invalid whose SKU can be read: those offers are neither updated nor
    removed, and the run says so; the rest of the report applies normally."""
    host, integ, rows = catalogue["host"], catalogue["integ"], catalogue["rows"]
    bad = {i for i in range(0, OFFERS, 40)}  # 2.5 % < 5 %: the report is accepted
    changed = [dict(r, price=Decimal("7.77")) for r in rows]
    gone = changed.pop()  # one offer really is gone
    lines = _report(changed).rstrip(b"\n").split(b"\n")
    for i in bad:  # a price Amazon would never send; the SKU is still readable
        fields = lines[i + 1].split(b"\t")
        fields[4] = b"12,34,56"
        lines[i + 1] = b"\t".join(fields)
    amazon.set_listings(DE, b"\n".join(lines) + b"\n", charset="Cp1252")
    before = offers(host, integ)
    run = run_import(host, integ)
    assert run.status == "succeeded", run.error_message
    assert (run.count_invalid, run.count_kept, run.count_removed) == (len(bad), len(bad), 1)
    assert run.count_updated == OFFERS - 1 - len(bad)
    assert {i["line"] for i in run.invalid_lines} == {i + 2 for i in sorted(bad)[:50]}
    after = offers(host, integ)
    for i in bad:
        sku = changed[i]["seller_sku"]
        assert after[sku].removed_at is None
        assert after[sku].price == before[sku].price  # not updated from the invalid line
    assert after[gone["seller_sku"]].removed_at is not None
    assert snapshot(host)[1] == catalogue["before"][1]


def test_removal_within_the_guard_succeeds(catalogue: dict[str, Any], amazon: Any) -> None:
    host, integ, rows = catalogue["host"], catalogue["integ"], catalogue["rows"]
    keep = OFFERS - OFFERS // 5  # exactly 20 % removed: allowed
    publish(amazon, "DE", rows[:keep])
    run = run_import(host, integ)
    assert (run.status, run.count_removed) == ("succeeded", OFFERS - keep), run.error_message
    publish(amazon, "DE", rows[: keep - keep // 5 - 1])  # just over 20 % of the live ones
    assert run_import(host, integ).status == "held"


def test_new_import_discards_the_held_one(catalogue: dict[str, Any], amazon: Any) -> None:
    host, integ, rows = catalogue["host"], catalogue["integ"], catalogue["rows"]
    publish(amazon, "DE", rows[:10])
    held = run_import(host, integ)
    assert held.status == "held"
    publish(amazon, "DE", rows)
    again = run_import(host, integ)
    assert (again.status, again.count_removed) == ("succeeded", 0)
    old = _run(host, held.id)
    assert (old.status, old.error_params["reason"]) == ("discarded", "superseded")
    assert _staged(host, held.id) == 0


def test_scheduled_import_is_held_and_allow_removal_confirms_up_front(
        catalogue: dict[str, Any], amazon: Any) -> None:
    from xsale_amazon_plugin.importing.lifecycle import start_import

    host, integ, rows = catalogue["host"], catalogue["integ"], catalogue["rows"]
    publish(amazon, "DE", rows[:10])
    with host.app.app_context():
        run_id = start_import(integ, trigger="schedule").id
    held = drain(host, run_id)
    assert held.status == "held"
    drain(host, None)  # more worker rounds: nothing confirms it
    assert _run(host, run_id).status == "held"
    with host.app.app_context():
        run_id = start_import(integ, trigger="cli", allow_removal=True).id
    run = drain(host, run_id)
    assert (run.status, run.count_removed) == ("succeeded", OFFERS - 10)
    assert _run(host, held.id).status == "discarded"


def test_first_import_is_exempt(amazon_host: Any, amazon: Any) -> None:
    rows = list(demo_listings(30, seed=5, marketplace="DE"))
    publish(amazon, "DE", rows)
    integ = amazon_host.add_integration("DE", "FBM")
    assert run_import(amazon_host, integ).count_created == 30
    publish(amazon, "DE", [])  # every offer gone
    with amazon_host.app.app_context():
        from xsale_amazon_plugin.importing.lifecycle import start_import

        run_id = start_import(integ, allow_removal=True).id
    assert drain(amazon_host, run_id).count_removed == 30
    publish(amazon, "DE", rows[:3])  # no live offer left: nothing to protect
    run = run_import(amazon_host, integ)
    assert (run.status, run.count_restored) == ("succeeded", 3)


def test_confirm_after_lost_staging_fails_and_changes_nothing(catalogue: dict[str, Any],
                                                              amazon: Any) -> None:
    """PostgreSQL's crash empties the UNLOGGED staging table; confirming what is left would
    remove offers the report listed. The confirmation fails instead."""
    from xsale_amazon_plugin.importing.lifecycle import confirm_run

    host, integ, rows = catalogue["host"], catalogue["integ"], catalogue["rows"]
    publish(amazon, "DE", rows[:100])
    held = run_import(host, integ)
    m = host.models
    with host.app.app_context():
        host.db.session.execute(m.import_row.delete().where(
            m.import_row.c.run_id == held.id, m.import_row.c.line > 40))
        host.db.session.commit()
        confirm_run(held.id, "op")
    run = drain(host, held.id)
    assert (run.status, run.error_code) == ("failed", "staging_lost")
    assert "lost" in run.error_message
    assert snapshot(host) == catalogue["before"]


def test_held_run_survives_recovery_and_expires(catalogue: dict[str, Any], amazon: Any) -> None:
    from datetime import timedelta

    from xsale_amazon_plugin.importing.lifecycle import recover_stale_runs
    from xsale_amazon_plugin.timeutil import utcnow

    host, integ, rows = catalogue["host"], catalogue["integ"], catalogue["rows"]
    publish(amazon, "DE", rows[:10])
    held = run_import(host, integ)
    with host.app.app_context():
        assert recover_stale_runs(now=utcnow() + timedelta(days=6)) == 0
    assert _run(host, held.id).status == "held"  # not "dead": nothing runs
    with host.app.app_context():
        recover_stale_runs(now=utcnow() + timedelta(days=7, minutes=1))
    run = _run(host, held.id)
    assert (run.status, run.error_params["reason"]) == ("discarded", "expired")
    assert snapshot(host) == catalogue["before"]


def test_cli_import_wait_exits_nonzero_when_held_and_allow_removal_applies(
        cli_env: dict[str, str], cli_worker: Any, emulator: Any) -> None:
    """Through `flask xsale-amazon` with a real worker process on PostgreSQL."""
    from .processes import engine_of, flask, offers_of

    rows = list(demo_listings(200, seed=31, marketplace="DE"))
    emulator.set_listings(DE, _report(rows), charset="Cp1252")
    cli_worker()
    first = flask(cli_env, "xsale-amazon", "import", "1", "--wait", "--timeout", "90")
    assert first.returncode == 0, first.stdout + first.stderr
    emulator.set_listings(DE, _report(rows[:50]), charset="utf8")  # cp1252 declared UTF-8
    engine = engine_of(cli_env)
    before = offers_of(engine, 1)
    held = flask(cli_env, "xsale-amazon", "import", "1", "--wait", "--timeout", "90")
    assert held.returncode == 3, held.stdout + held.stderr
    assert "would remove 150 of the integration's 200 offers" in held.stderr
    assert "--allow-removal" in held.stderr and "flask xsale-amazon confirm" in held.stderr
    assert offers_of(engine, 1) == before
    with engine.connect() as conn:
        run_id = conn.execute(sa.text(
            "SELECT max(id) FROM xsale_amazon_import_run WHERE status = 'held'")).scalar_one()
    confirmed = flask(cli_env, "xsale-amazon", "confirm", str(run_id), "--wait", "--timeout",
                      "90")
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    assert "removed 150" in confirmed.stdout
    again = flask(cli_env, "xsale-amazon", "confirm", str(run_id))
    assert again.returncode != 0 and "not waiting for confirmation" in again.stderr
    emulator.set_listings(DE, _report(rows), charset="Cp1252")
    flask(cli_env, "xsale-amazon", "import", "1", "--wait", "--timeout", "90")  # all back
    emulator.set_listings(DE, _report(rows[:20]), charset="Cp1252")
    up_front = flask(cli_env, "xsale-amazon", "import", "1", "--wait", "--allow-removal",
                     "--timeout", "90")
    assert up_front.returncode == 0, up_front.stdout + up_front.stderr
    assert "removed 180" in up_front.stdout
    engine.dispose()


def test_scheduled_slots_hold_never_confirm_and_do_not_pause_the_schedule(
        amazon_host: Any, amazon: Any) -> None:
    """Through the real schedule (sync_tick): every scheduled run of a report that removes
    most offers is held; the next slot supersedes it; none confirms itself, and held runs are
    not failures, so the schedule is not paused."""
    from datetime import UTC, datetime, timedelta

    from xsale_amazon_plugin.scheduling.service import failure_streak, get_schedule, set_schedule
    from xsale_amazon_plugin.scheduling.tick import sync_tick

    host = amazon_host
    rows = list(demo_listings(40, seed=9, marketplace="DE"))
    publish(amazon, "DE", rows)
    integ = host.add_integration("DE", "FBM")
    assert run_import(host, integ).status == "succeeded"
    before = snapshot(host)
    publish(amazon, "DE", rows[:5])
    t0 = datetime.now(UTC).replace(second=0, microsecond=0)
    with host.app.app_context():
        set_schedule(integ, "every", now=t0, every_minutes=1)
    held: list[int] = []
    for n in range(1, 5):
        with host.app.app_context():
            try:
                (slot,) = sync_tick(t0 + timedelta(minutes=n, seconds=2))
            finally:
                host.db.session.remove()
        run = drain(host, slot.run_id)
        assert (run.status, run.trigger) == ("held", "schedule")
        held.append(run.id)
        drain(host, None)  # more worker rounds: still held
        assert _run(host, run.id).status == "held"
    assert [_run(host, i).status for i in held] == ["discarded"] * 3 + ["held"]
    assert all(_run(host, i).error_params["reason"] == "superseded" for i in held[:3])
    with host.app.app_context():
        assert failure_streak(integ) == 0 and get_schedule(integ).paused_at is None
    assert snapshot(host) == before
