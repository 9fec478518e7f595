"""Schedule card of the integration page, freshness column, alert banner and menu badge."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import flash, g, has_request_context, redirect, request, url_for
from flask_admin import expose
from flask_babel import format_timedelta
from markupsafe import Markup, escape
from wtforms import IntegerField, RadioField, StringField
from wtforms.validators import NumberRange, Optional, Regexp

from ..babel import gettext as _
from ..babel import lazy_gettext as _l
from ..models import ScheduleKind, int_in_range
from ..proxies import current_amazon
from ..scheduling.alerts import forget_request_alerts, integration_viewed, request_alerts
from ..scheduling.freshness import freshness_of, mark_alerts_seen
from ..scheduling.service import (
    get_schedule,
    plugin_timezone,
    recent_slots,
    resume_schedule,
    schedule_status,
    set_schedule,
)
from ..scheduling.slots import InvalidSchedule
from ..timeutil import utcnow
from .api import blueprint
from .base import PluginForm

log = logging.getLogger(__name__)

MAX_UI_HOURS = 168


class _ScheduleForm(PluginForm):
    kind = RadioField(_l("Scheduled import"), default=ScheduleKind.OFF, choices=[
        (ScheduleKind.OFF, _l("Off")),
        (ScheduleKind.EVERY, _l("Every N hours")),
        (ScheduleKind.DAILY, _l("Daily at")),
    ])
    every_hours = IntegerField(_l("Hours"), default=24,
                               validators=[Optional(), NumberRange(min=1, max=MAX_UI_HOURS)])
    daily_at = StringField(_l("Time"), default="03:00", validators=[
        Optional(), Regexp(r"^([01]?\d|2[0-3]):[0-5]\d$", message=_l("Enter a time as HH:MM."))])


def _schedule_form_for(schedule: Any) -> _ScheduleForm:
    form = _ScheduleForm(request.form if request.method == "POST" else None)
    if request.method != "POST" and schedule is not None:
        form.kind.data = schedule.kind
        if schedule.every_minutes:
            form.every_hours.data = max(1, min(MAX_UI_HOURS, schedule.every_minutes // 60))
        if schedule.daily_at:
            form.daily_at.data = schedule.daily_at
    return form


def _format_local(moment: datetime | None) -> str:
    """``moment`` in the plugin's time zone, as ``YYYY-MM-DD HH:MM``."""
    if moment is None:
        return "—"
    return moment.astimezone(plugin_timezone()).strftime("%Y-%m-%d %H:%M")


def _format_ago(moment: datetime | None) -> str:
    """"3 hours ago" in the operator's language."""
    if moment is None:
        return _("never")
    try:
        return str(format_timedelta(moment - utcnow(), add_direction=True, threshold=1.0))
    except Exception:  # Babel without locale data for the host's locale
        minutes = int((utcnow() - moment).total_seconds() // 60)
        return f"-{minutes} min"


def _freshness_badge(freshness: Any) -> Markup:
    """The freshness cell: "3 hours ago" plus a Stale badge."""
    if freshness is None:
        return Markup('<span class="text-muted">—</span>')
    when = freshness.last_success_at
    if when is None:
        text = Markup('<span class="xa-freshness text-muted">{}</span>').format(_("never"))
    else:
        text = Markup('<span class="xa-freshness" title="{}">{}</span>').format(
            _format_local(when), _format_ago(when))
    if freshness.is_stale:
        text += Markup(' <span class="badge badge-warning xa-stale" title="{}">{}</span>').format(
            _("No successful import for longer than twice the schedule (48 hours without a "
              "schedule)."), _("Stale"))
    return text


class _AlertBadgeName(str):
    """A menu category name that renders with a badge counting the alerts."""

    def __html__(self) -> str:
        count = len(request_alerts())
        html = escape(str(self))
        if count:
            html += Markup(' <span class="badge badge-pill badge-danger xa-menu-badge" '
                           'title="{}">{}</span>').format(
                _("Amazon integrations needing attention"), count)
        return str(html)


def add_alert_badge(admin: Any, category: str) -> None:
    """Show the alert count on the ``category`` menu of ``admin`` (idempotent)."""
    item = admin.get_category_menu_item(str(category))
    if item is not None and not isinstance(item.name, _AlertBadgeName):
        item.name = _AlertBadgeName(item.name)


@blueprint.app_context_processor
def _template_helpers() -> dict[str, Any]:
    return {
        "xa_alerts": request_alerts,
        "xa_alert_form": lambda: PluginForm(),
        "xa_local_time": _format_local,
        "xa_ago": _format_ago,
        "xa_offers_freshness": _offers_freshness,
    }


def _offers_freshness(view: Any) -> list[tuple[Any, Any]]:
    """(integration, freshness) of the integration the offers list is filtered by, or of
    every active integration when it is not filtered by one."""
    try:
        m = current_amazon.models
        chosen: set[int] = set()
        for idx, _name, value in view._get_list_filter_args() or ():
            flt = view._filters[idx] if view._filters else None
            if getattr(flt, "column", None) is m.AmazonOffer.integration_id:
                number = int_in_range(value)
                if number is not None:
                    chosen.add(number)
        query = sa.select(m.AmazonIntegration).order_by(m.AmazonIntegration.name)
        query = query.where(m.AmazonIntegration.id.in_(chosen)) if chosen else query.where(
            m.AmazonIntegration.active.is_(True))
        integrations = current_amazon.db.session.execute(query).scalars().all()
        fresh = freshness_of(integrations)
        return [(i, fresh[i.id]) for i in integrations]
    except Exception:
        log.exception("xsale_amazon: offers freshness failed")
        current_amazon.db.session.rollback()
        return []


class ScheduleViewMixin:
    """Schedule endpoints and page data of the integration view."""

    get_url: Callable[..., str]  # provided by Flask-Admin's BaseView

    def schedule_context(self, model: Any) -> dict[str, Any]:
        schedule = get_schedule(model.id)
        return {
            "schedule": schedule,
            "schedule_status": schedule_status(schedule, active=bool(model.active)),
            "schedule_form": _schedule_form_for(schedule),
            "schedule_slots": recent_slots(model.id),
            "freshness": freshness_of([model]).get(model.id),
        }

    def freshness_map(self) -> dict[int, Any]:
        """Freshness of every integration, computed once per request (list column)."""
        if "_xsale_amazon_freshness" not in g:
            integ = current_amazon.models.AmazonIntegration
            g._xsale_amazon_freshness = freshness_of(
                current_amazon.db.session.execute(sa.select(integ)).scalars().all())
        return dict(g._xsale_amazon_freshness)

    def schedule_map(self) -> dict[int, Any]:
        """Schedule rows by integration id, read once per request (list column)."""
        if "_xsale_amazon_schedules" not in g:
            schedule = current_amazon.models.SyncSchedule
            g._xsale_amazon_schedules = {s.integration_id: s for s in current_amazon.db.session
                                         .execute(sa.select(schedule)).scalars()}
        return dict(g._xsale_amazon_schedules)

    def look_at_alerts(self, integration_id: int) -> None:
        """The operator opened the integration's page: its alerts were seen (GET only, and
        only when it has one, so viewing writes nothing otherwise)."""
        if request.method == "GET":
            integration_viewed(integration_id)

    @expose("/schedule/<int:integration_id>/", methods=("POST",))
    def schedule_view(self, integration_id: int) -> Any:
        back = redirect(self.get_url(".edit_view", id=integration_id) + "#xa-schedule")
        form = _ScheduleForm(request.form)
        if not form.validate():
            if "csrf_token" in form.errors:
                flash(_("The form expired; reload the page and try again."), "error")
            else:
                for errors in form.errors.values():
                    for error in errors:
                        flash(escape(str(error)), "error")
            return back
        if int_in_range(integration_id) is None:
            flash(_("This integration does not exist."), "error")
            return redirect(self.get_url(".index_view"))
        kind = form.kind.data
        hours = form.every_hours.data
        if kind == ScheduleKind.EVERY and not hours:
            flash(_("Enter how many hours apart the imports run (1 to %(max)s).",
                    max=MAX_UI_HOURS), "error")
            return back
        if kind == ScheduleKind.DAILY and not form.daily_at.data:
            flash(_("Enter a time as HH:MM."), "error")
            return back
        try:
            set_schedule(integration_id, kind,
                         every_minutes=hours * 60 if kind == ScheduleKind.EVERY else None,
                         daily_at=form.daily_at.data if kind == ScheduleKind.DAILY else None,
                         user=current_amazon.current_user_name())
        except LookupError:
            flash(_("This integration does not exist."), "error")
            return redirect(self.get_url(".index_view"))
        except InvalidSchedule as exc:
            flash(escape(str(exc)), "error")
            return back
        flash(_("Schedule saved.") if kind != ScheduleKind.OFF
              else _("Scheduled imports are off."), "success")
        return back

    @expose("/schedule/<int:integration_id>/resume/", methods=("POST",))
    def schedule_resume_view(self, integration_id: int) -> Any:
        form = PluginForm(request.form)
        back = redirect(self.get_url(".edit_view", id=integration_id) + "#xa-schedule")
        if not form.validate():
            flash(_("The form expired; reload the page and try again."), "error")
            return back
        try:
            resume_schedule(integration_id, user=current_amazon.current_user_name())
        except LookupError:
            flash(_("This integration does not exist."), "error")
            return redirect(self.get_url(".index_view"))
        flash(_("Scheduled imports resumed."), "success")
        return back

    @expose("/alerts/seen/", methods=("POST",))
    def alerts_seen_view(self) -> Any:
        form = PluginForm(request.form)
        target = request.form.get("url") or ""
        # Only back to a page of this site (no open redirect).
        if not target.startswith("/") or target.startswith("//"):
            target = self.get_url(".index_view")
        if not form.validate():
            flash(_("The form expired; reload the page and try again."), "error")
            return redirect(target)
        mark_alerts_seen()
        forget_request_alerts()
        return redirect(target)


def integration_freshness_formatter(view: Any, context: Any, model: Any, name: str) -> Markup:
    return _freshness_badge(view.freshness_map().get(model.id))


def integration_schedule_formatter(view: Any, context: Any, model: Any, name: str) -> Markup:
    schedule = view.schedule_map().get(model.id)
    status = schedule_status(schedule, active=bool(model.active))
    return Markup('<span class="xa-schedule-cell">{}</span>').format(_describe_schedule(status))


def _describe_schedule(status: Any) -> Markup:
    """Translated one-liner of a schedule (with its next run)."""
    if not status.is_on:
        return Markup('<span class="text-muted">{}</span>').format(_("Off"))
    if status.kind == ScheduleKind.EVERY:
        minutes = status.every_minutes or 0
        if minutes % 60 == 0:
            text = _("every %(num)s h", num=minutes // 60)
        else:
            text = _("every %(num)s min", num=minutes)
    else:
        text = _("daily at %(time)s", time=status.daily_at)
    html = Markup("{}").format(text)
    if status.paused_at:
        html += Markup(' <span class="badge badge-danger xa-paused">{}</span>').format(_("Paused"))
    elif status.next_run_at:
        html += Markup(' <small class="text-muted xa-next-run">{} {}</small>').format(
            _("next"), _format_local(status.next_run_at))
    return html


def return_url() -> str:
    return request.full_path.rstrip("?") if has_request_context() else url_for("admin.index")
