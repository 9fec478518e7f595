"""Scheduled imports, freshness and alerts: slot rules, the due-slot service (real Redis and
RQ, the emulator over HTTP), the CLI contract, the integration page, badge, banner, signals."""

from __future__ import annotations

import re
import threading
from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from xsale_amazon_plugin.emulator.report_builder import demo_listings
from xsale_amazon_plugin.models import ScheduleKind
from xsale_amazon_plugin.scheduling.slots import InvalidSchedule, ScheduleSpec, parse_daily_at

from .conftest import drain
from .test_admin_import import token_of
from .test_import import publish

UTC = timezone.utc
WARSAW = ZoneInfo("Europe/Warsaw")


# -- slot rules (no database) ----------------------------------------------------------------
def test_every_slots_are_anchored_and_missed_slots_collapse():
    anchor = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    spec = ScheduleSpec(ScheduleKind.EVERY, 60, None, anchor)
    assert spec.latest_slot(anchor + timedelta(minutes=59), UTC) is None
    assert spec.next_slot(anchor + timedelta(minutes=59), UTC) == anchor + timedelta(hours=1)
    assert spec.latest_slot(anchor + timedelta(minutes=60), UTC) == anchor + timedelta(hours=1)
    # Workers down from 11:00 to 14:30: one due slot (14:00), not four.
    assert spec.due_slot(anchor + timedelta(hours=4, minutes=30), UTC,
                         anchor + timedelta(hours=1)) == anchor + timedelta(hours=4)
    assert spec.due_slot(anchor + timedelta(hours=4, minutes=30), UTC,
                         anchor + timedelta(hours=4)) is None


def test_daily_slots_follow_the_time_zone_across_dst():
    spec = ScheduleSpec(ScheduleKind.DAILY, None, time(3, 30), None)
    winter = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    assert spec.latest_slot(winter, WARSAW) == datetime(2026, 1, 15, 2, 30, tzinfo=UTC)
    summer = datetime(2026, 7, 15, 1, 0, tzinfo=UTC)  # 03:00 in Warsaw: today's slot not yet
    assert spec.latest_slot(summer, WARSAW) == datetime(2026, 7, 14, 1, 30, tzinfo=UTC)
    assert spec.next_slot(summer, WARSAW) == datetime(2026, 7, 15, 1, 30, tzinfo=UTC)
    # 2026-03-29 02:30 does not exist in Warsaw: that day's run is at 03:30 CEST (01:30 UTC).
    gap = ScheduleSpec(ScheduleKind.DAILY, None, time(2, 30), None)
    assert gap.next_slot(datetime(2026, 3, 29, 0, 0, tzinfo=UTC), WARSAW) == datetime(
        2026, 3, 29, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize("value", ["24:00", "7", "12:60", "", "ab:cd", "1:2"])
def test_invalid_daily_times_are_refused(value):
    with pytest.raises(InvalidSchedule, match="HH:MM"):
        parse_daily_at(value)


# -- the service -------------------------------------------------------------------------------
def _runs(host: Any, integration_id: int | None = None) -> list[Any]:
    m = host.models
    with host.app.app_context():
        query = sa.select(m.ImportRun).order_by(m.ImportRun.id)
        if integration_id is not None:
            query = query.where(m.ImportRun.integration_id == integration_id)
        rows = host.db.session.execute(query).scalars().all()
        for r in rows:
            host.db.session.expunge(r)
    return rows


def _slots(host: Any, integration_id: int) -> list[tuple[datetime, str, int | None]]:
    m = host.models
    with host.app.app_context():
        return [(s.slot_at, s.outcome, s.run_id) for s in host.db.session.execute(
            sa.select(m.ScheduleSlot).where(m.ScheduleSlot.integration_id == integration_id)
            .order_by(m.ScheduleSlot.slot_at)).scalars()]


def _tick(host: Any, now: datetime) -> list[Any]:
    from xsale_amazon_plugin.scheduling.tick import sync_tick

    with host.app.app_context():
        try:
            return sync_tick(now)
        finally:
            host.db.session.remove()


def _set(host: Any, integration_id: int, kind: str, now: datetime, **kwargs: Any) -> None:
    from xsale_amazon_plugin.scheduling.service import set_schedule

    with host.app.app_context():
        set_schedule(integration_id, kind, now=now, **kwargs)


@pytest.fixture
def de_host(amazon_host: Any, amazon: Any) -> Any:
    publish(amazon, "DE", list(demo_listings(20, seed=3, marketplace="DE")))
    return amazon_host


def test_a_due_slot_starts_one_scheduled_run_and_catches_up_once(de_host):
    host = de_host
    integ = host.add_integration("DE")
    t0 = datetime.now(UTC).replace(second=10, microsecond=0)
    _set(host, integ, "every", t0, every_minutes=1)
    assert _tick(host, t0 + timedelta(seconds=30)) == []  # before the first slot
    first = _tick(host, t0 + timedelta(seconds=55))
    assert [(r.outcome, r.slot_at) for r in first] == [("started", t0.replace(second=0)
                                                        + timedelta(minutes=1))]
    assert _tick(host, t0 + timedelta(seconds=58)) == []  # same slot: nothing more
    run = drain(host, first[0].run_id)
    assert run.status == "succeeded" and run.trigger == "schedule"
    # No worker for five slots: one catch-up run for the latest slot only.
    catch_up = _tick(host, t0 + timedelta(minutes=6, seconds=5))
    assert [r.slot_at for r in catch_up] == [t0.replace(second=0) + timedelta(minutes=6)]
    drain(host, catch_up[0].run_id)
    assert len(_runs(host, integ)) == 2
    assert [o for _s, o, _r in _slots(host, integ)] == ["started", "started"]


def test_a_slot_during_a_running_import_is_skipped_and_recorded(de_host):
    from xsale_amazon_plugin import start_import

    host = de_host
    integ = host.add_integration("DE")
    t0 = datetime.now(UTC).replace(second=0, microsecond=0)
    _set(host, integ, "every", t0, every_minutes=1)
    with host.app.app_context():
        manual = start_import(integ, trigger="ui").id  # no worker: stays queued
    results = _tick(host, t0 + timedelta(minutes=1, seconds=1))
    assert [(r.outcome, r.run_id) for r in results] == [("skipped", manual)]
    assert [r.id for r in _runs(host, integ)] == [manual]  # not queued behind it
    assert _slots(host, integ)[0][1:] == ("skipped", manual)
    with host.app.app_context():
        page = host.app.test_client().get(
            f"/admin/xsale-amazon/integrations/edit/?id={integ}").get_data(as_text=True)
    assert "Skipped: import running" in page


def test_concurrent_ticks_start_one_run_per_slot(request, de_host):
    if request.node.callspec.params.get("db_url") == "sqlite":
        pytest.skip("concurrent writers: PostgreSQL and MariaDB")
    host = de_host
    ids = [host.add_integration("DE", name=f"DE {n}", seller_id=f"A{n}SELLER") for n in range(3)]
    t0 = datetime.now(UTC).replace(second=0, microsecond=0)
    for integ in ids:
        _set(host, integ, "every", t0, every_minutes=1)
    outcomes: list[Any] = []
    barrier = threading.Barrier(6)

    def worker(offset: int) -> None:
        barrier.wait()
        for slot in range(1, 4):
            outcomes.extend(_tick(host, t0 + timedelta(minutes=slot, seconds=offset)))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for integ in ids:
        slots = _slots(host, integ)
        started = [s for s in slots if s[1] == "started"]
        runs = _runs(host, integ)
        # Slot 1 starts a run; slots 2 and 3 find it still queued (no worker) and skip.
        assert len(runs) == 1, runs
        assert len({s[0] for s in slots}) == len(slots) == 3
        assert len(started) == 1 and started[0][2] == runs[0].id


def test_three_failed_scheduled_runs_pause_alert_and_signal(amazon_host, amazon):
    from xsale_amazon_plugin.signals import import_failed, schedule_paused

    host = amazon_host
    publish(amazon, "FR", list(demo_listings(5, seed=4, marketplace="FR")), "fr")
    integ = host.add_integration("FR")
    failed: list[Any] = []
    paused: list[Any] = []

    def on_failed(app: Any, run: Any, integration: Any, error: str) -> None:
        failed.append((run.id, integration.id, error))

    def on_paused(app: Any, integration: Any, reason: str) -> None:
        paused.append((integration.id, reason))

    import_failed.connect(on_failed)
    schedule_paused.connect(on_paused)
    try:
        t0 = datetime.now(UTC).replace(second=0, microsecond=0)
        _set(host, integ, "every", t0, every_minutes=1)
        for n in range(1, 5):
            results = _tick(host, t0 + timedelta(minutes=n, seconds=2))
            if n < 4:
                assert [r.outcome for r in results] == ["started"]
                assert drain(host, results[0].run_id).status == "failed"
            else:
                assert results == [], "a paused schedule starts nothing"
    finally:
        import_failed.disconnect(on_failed)
        schedule_paused.disconnect(on_paused)
    assert len(failed) == 3 and all("ASIN" in e for _r, _i, e in failed)
    assert paused == [(integ, "failures")]
    client = host.app.test_client()
    listing = client.get("/admin/xsale-amazon/runs/").get_data(as_text=True)
    assert 'xa-menu-badge' in listing and 'id="xa-alert-banner"' in listing
    pages = [r.rule for r in host.app.url_map.iter_rules()
             if r.endpoint.startswith("xsale_amazon_")
             and r.endpoint.endswith((".index_view", ".index"))
             and not r.arguments]
    pages.append(f"/admin/xsale-amazon/runs/details/?id={_runs(host, integ)[-1].id}")
    assert len(pages) >= 4
    for url in pages:  # every page of the plugin shows the banner
        response = client.get(url)
        assert response.status_code == 200, url
        assert 'id="xa-alert-banner"' in response.get_data(as_text=True), url
    home = client.get("/admin/").get_data(as_text=True)  # the host's own pages: badge only
    assert re.search(r'xa-menu-badge"[^>]*>1</span>', home) and "xa-alert-banner" not in home
    host.access["allowed"] = False  # not an operator: no badge, no schedule changes
    assert "xa-menu-badge" not in client.get("/admin/").get_data(as_text=True)
    assert client.post(f"/admin/xsale-amazon/integrations/schedule/{integ}/resume/",
                       data={}).status_code == 403
    host.access["allowed"] = True
    page = client.get(f"/admin/xsale-amazon/integrations/edit/?id={integ}").get_data(as_text=True)
    assert "Resume schedule" in page and "in a row failed" in page
    # Opening the integration is looking at it: badge and banner are gone.
    after = client.get("/admin/xsale-amazon/runs/").get_data(as_text=True)
    assert "xa-menu-badge" not in after and "xa-alert-banner" not in after
    assert client.post(f"/admin/xsale-amazon/integrations/schedule/{integ}/resume/",
                       data={"csrf_token": token_of(page)}).status_code == 302
    with host.app.app_context():
        from xsale_amazon_plugin.scheduling.service import failure_streak, get_schedule

        assert get_schedule(integ).paused_at is None
        assert failure_streak(integ) == 0


def test_stale_integration_alerts_and_signals_once(amazon_host, amazon):
    from xsale_amazon_plugin.signals import integration_stale

    host = amazon_host
    publish(amazon, "DE", list(demo_listings(5, seed=5, marketplace="DE")))
    integ = host.add_integration("DE")
    got: list[Any] = []

    def on_stale(app: Any, integration: Any, last_success_at: Any, stale_since: Any) -> None:
        got.append((integration.id, last_success_at, stale_since))

    integration_stale.connect(on_stale)
    try:
        now = datetime.now(UTC)
        _tick(host, now)
        assert got == []  # created just now: not stale
        later = now + timedelta(hours=49)
        _tick(host, later)
        _tick(host, later + timedelta(minutes=1))
        assert [g[0] for g in got] == [integ] and got[0][1] is None
    finally:
        integration_stale.disconnect(on_stale)
    with host.app.app_context():
        from xsale_amazon_plugin.scheduling.freshness import current_alerts, mark_alerts_seen

        alerts = current_alerts(later)
        assert [(a.integration_id, a.stale is not None) for a in alerts] == [(integ, True)]
        mark_alerts_seen(now=later)
        assert current_alerts(later + timedelta(seconds=1)) == []


def test_freshness_on_lists_and_offers_workspace(de_host):
    from xsale_amazon_plugin import start_import

    host = de_host
    integ = host.add_integration("DE")
    other = host.add_integration("DE", "FBA", name="Never imported")
    with host.app.app_context():
        run_id = start_import(integ, trigger="ui").id
    drain(host, run_id)
    m = host.models
    with host.app.app_context():  # the never-imported one was created three days ago
        host.db.session.execute(sa.update(m.AmazonIntegration).where(
            m.AmazonIntegration.id == other).values(
                created_at=datetime.now(UTC) - timedelta(days=3)))
        host.db.session.commit()
    client = host.app.test_client()
    listing = client.get("/admin/xsale-amazon/integrations/").get_data(as_text=True)
    assert "Last success" in listing and "seconds ago" in listing or "second ago" in listing
    assert listing.count('xa-stale"') == 1
    offers = client.get(f"/admin/xsale-amazon/offers/?flt0_0={integ}").get_data(as_text=True)
    assert 'id="xa-offers-freshness"' in offers
    assert f'data-integration-id="{integ}"' in offers
    assert f'xa-offers-freshness-item" data-integration-id="{other}"' not in offers


# -- the integration page and the CLI ---------------------------------------------------------
def test_schedule_form_sets_shows_and_validates(de_host):
    host = de_host
    integ = host.add_integration("DE")
    client = host.app.test_client()
    url = f"/admin/xsale-amazon/integrations/schedule/{integ}/"
    token = token_of(client.get(f"/admin/xsale-amazon/integrations/edit/?id={integ}")
                     .get_data(as_text=True))
    assert client.post(url, data={"kind": "every", "every_hours": "6"}).status_code == 302
    page = client.get(f"/admin/xsale-amazon/integrations/edit/?id={integ}").get_data(as_text=True)
    assert "The form expired" in page and 'id="xa-next-run-at"' not in page  # no token
    assert client.post(url, data={"kind": "every", "every_hours": "6",
                                  "csrf_token": token}).status_code == 302
    page = client.get(f"/admin/xsale-amazon/integrations/edit/?id={integ}").get_data(as_text=True)
    assert 'id="xa-next-run-at"' in page and "Schedule saved." in page
    with host.app.app_context():
        from xsale_amazon_plugin.scheduling.service import get_schedule

        row = get_schedule(integ)
        assert (row.kind, row.every_minutes) == ("every", 360)
    client.post(url, data={"kind": "daily", "daily_at": "25:00", "csrf_token": token})
    page = client.get(f"/admin/xsale-amazon/integrations/edit/?id={integ}").get_data(as_text=True)
    assert "Enter a time as HH:MM." in page
    with host.app.app_context():
        assert get_schedule(integ).kind == "every"  # unchanged
    client.post(url, data={"kind": "daily", "daily_at": "04:15", "csrf_token": token})
    listing = client.get("/admin/xsale-amazon/integrations/").get_data(as_text=True)
    assert "daily at 04:15" in listing
    client.post(url, data={"kind": "off", "csrf_token": token})
    with host.app.app_context():
        assert get_schedule(integ).kind == "off"


def test_cli_contract(de_host):
    host = de_host
    integ = host.add_integration("DE")
    other = host.add_integration("DE", "FBA")
    runner = host.app.test_cli_runner()
    out = runner.invoke(args=["xsale-amazon", "schedule", str(integ), "--every", "90"])
    assert out.exit_code == 0, out.output
    assert out.output.startswith(f"{integ}\tevery 90 min\t")
    out = runner.invoke(args=["xsale-amazon", "schedule", str(other), "--daily", "03:30"])
    assert out.exit_code == 0 and "\tdaily 03:30 UTC\t" in out.output
    listing = runner.invoke(args=["xsale-amazon", "schedule", "--list"])
    lines = listing.output.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(integ), str(other)]
    first = lines[0].split("\t")
    assert first[1] == "every 90 min" and first[3] == "never"
    next_run = datetime.fromisoformat(first[2])
    assert timedelta(0) < next_run - datetime.now(UTC) <= timedelta(minutes=90)
    assert lines[1].split("\t")[2].endswith("T03:30:00+00:00")
    off = runner.invoke(args=["xsale-amazon", "schedule", str(integ), "--off"])
    assert off.exit_code == 0 and off.output.split("\t")[1:3] == ["off", "-"]
    for bad, message in ((["--every", "0"], "between 1 and"), (["--daily", "7pm"], "HH:MM"),
                         (["--every", "5", "--off"], "exactly one"), ([], "exactly one")):
        result = runner.invoke(args=["xsale-amazon", "schedule", str(integ), *bad])
        assert result.exit_code != 0 and message in result.output, (bad, result.output)
    missing = runner.invoke(args=["xsale-amazon", "schedule", "999", "--every", "5"])
    assert missing.exit_code != 0 and "does not exist" in missing.output


def test_daily_schedule_in_the_configured_time_zone(de_host):
    from xsale_amazon_plugin import SettingsError

    host = de_host
    host.configure(timezone="Europe/Warsaw")
    integ = host.add_integration("DE")
    runner = host.app.test_cli_runner()
    out = runner.invoke(args=["xsale-amazon", "schedule", str(integ), "--daily", "03:30"])
    assert out.exit_code == 0, out.output
    schedule, next_run = out.output.strip().split("\t")[1:3]
    assert schedule == "daily 03:30 Europe/Warsaw"
    local = datetime.fromisoformat(next_run)
    assert (local.hour, local.minute) == (3, 30)
    assert local.utcoffset() == WARSAW.utcoffset(local.replace(tzinfo=None))
    with pytest.raises(SettingsError, match="XSALE_AMAZON_TIMEZONE"):
        host.configure(timezone="Mars/Olympus")


def test_every_plugin_page_template_carries_the_alert_banner():
    from pathlib import Path

    import xsale_amazon_plugin

    folder = Path(xsale_amazon_plugin.__file__).parent / "templates" / "xsale_amazon" / "admin"
    pages = [p for p in folder.glob("*.html")
             if not p.name.startswith("_") and "{% extends 'admin/" in p.read_text()]
    assert len(pages) >= 8
    missing = [p.name for p in pages if "_alerts_banner.html" not in p.read_text()]
    assert missing == [], f"add the messages block with _alerts_banner.html to {missing}"
