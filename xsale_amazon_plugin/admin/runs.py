"""Import runs: history with filters, and the live progress page of one run."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_admin.contrib.sqla.filters import DateBetweenFilter, FilterEqual, IntEqualFilter
from flask_babel import LazyString
from markupsafe import Markup

from ..babel import gettext as _
from ..babel import lazy_gettext as _l
from ..formatting import format_number, format_timestamp
from ..importing.lifecycle import (
    HoldNotPending,
    ImportAlreadyRunning,
    ImportRefused,
    confirm_run,
    discard_run,
    rerun_report_mode,
)
from ..importing.messages import (
    amazon_message,
    asin_instruction,
    charset_note,
    ended_stage_label,
    error_text,
    remedy_first,
    report_format_text,
    status_label,
)
from ..importing.progress import run_progress
from ..models import Status, int_in_range
from ..proxies import current_amazon
from .base import PluginModelView
from .shared import cancel_from_view, integration_options, start_import_from_view, status_badge


def _status(view: Any, context: Any, model: Any, name: str) -> Markup:
    return status_badge(model.status)


def _counts(view: Any, context: Any, model: Any, name: str) -> Markup:
    """What the run changed, in words; a dash for runs that change nothing by design."""
    if model.status != Status.SUCCEEDED:
        return Markup('<span class="text-muted">—</span>')
    parts = [
        (_("created"), model.count_created), (_("updated"), model.count_updated),
        (_("unchanged"), model.count_unchanged), (_("removed"), model.count_removed),
    ]
    return Markup(" · ").join(
        Markup('<span class="text-nowrap">{} <strong>{}</strong></span>').format(
            label, format_number(value)) for label, value in parts
    )


def _datetime(view: Any, context: Any, model: Any, name: str) -> str:
    return format_timestamp(getattr(model, name))


class ImportRunView(PluginModelView):
    """Import history with filters, the live progress page of a run, and *Run again*."""
    details_template = "xsale_amazon/admin/run_details.html"
    can_create = False
    can_edit = False
    can_delete = False
    can_view_details = True
    column_list = ("id", "integration", "status", "stage", "created_at", "finished_at",
                   "count_read", "counts", "requested_by")
    column_labels = {
        "id": "#",
        "integration": _l("Integration"),
        "status": _l("Status"),
        "stage": _l("Stage"),
        "created_at": _l("Started"),
        "finished_at": _l("Finished"),
        "count_read": _l("Rows read"),
        "counts": _l("Changes"),
        "requested_by": _l("Requested by"),
    }
    column_formatters = {
        "status": _status,
        "stage": lambda v, c, m, n: ended_stage_label(m),
        "counts": _counts,
        "created_at": _datetime,
        "finished_at": _datetime,
        "count_read": lambda v, c, m, n: format_number(m.count_read),
    }
    column_default_sort = ("id", True)
    column_sortable_list = ("id", "status", "created_at", "finished_at")

    def __init__(self, model: Any, db: Any, **kwargs: Any) -> None:
        self.column_filters = [
            IntEqualFilter(model.integration_id, _l("Integration"), options=integration_options),
            FilterEqual(model.status, _l("Status"), options=[
                (s, LazyString(status_label, s))
                for s in (*Status.ACTIVE, Status.HELD, *Status.ENDED)
            ]),
            DateBetweenFilter(model.created_at, _l("Started")),
        ]
        super().__init__(model, db, **kwargs)

    @expose("/details/")
    def details_view(self) -> Any:
        run_id = int_in_range(request.args.get("id", ""))
        if run_id is None:  # "abc", "1;DROP", 999999999999999999999: no such run
            abort(404)
        run = current_amazon.db.session.get(self.model, run_id)
        if run is None:
            abort(404)
        code, params = run.error_code, run.error_params
        return self.render(
            self.details_template,
            run=run,
            progress=run_progress(run),
            error=error_text(code, params, with_amazon_message=False) if code else None,
            amazon_message=amazon_message(code, params),
            remedy_first=remedy_first(code) and run.status == Status.FAILED,
            asin_instruction=asin_instruction(),
            rerun_form=self.csrf_form(),
            charset_note=charset_note(run.declared_charset, run.encoding),
            format_datetime=format_timestamp,
            format_number=format_number,
            stage_text=ended_stage_label(run),
            report_format=report_format_text(run.encoding, run.header_family),
            status_url=url_for("xsale_amazon.run_status", run_id=run.id),
            offers_url=url_for("xsale_amazon_offer.index_view", view="all",
                               flt0_0=run.integration_id),
        )

    @expose("/rerun/<int:run_id>/", methods=("POST",))
    def rerun_view(self, run_id: int) -> Any:
        session = current_amazon.db.session
        run = session.get(self.model, run_id) if int_in_range(run_id) is not None else None
        if run is None:
            abort(404)
        if not self.csrf_valid():
            return redirect(self.get_url(".details_view", id=run_id))
        new_run, error = start_import_from_view(run.integration_id,
                                                report_mode=rerun_report_mode(run))
        target = new_run or getattr(error, "run", None) or run
        return redirect(self.get_url(".details_view", id=target.id))

    @expose("/confirm/<int:run_id>/", methods=("POST",))
    def confirm_view(self, run_id: int) -> Any:
        """Apply a held run's staged report exactly as it was staged."""
        if int_in_range(run_id) is None:
            abort(404)
        if not self.csrf_valid():
            return redirect(self.get_url(".details_view", id=run_id))
        try:
            confirm_run(run_id, current_amazon.current_user_name())
        except HoldNotPending:
            flash(_("This import is no longer waiting for confirmation."), "warning")
        except ImportAlreadyRunning as exc:
            flash(Markup('{} <a href="{}">{}</a>').format(
                _("Another import of this integration is running."),
                self.get_url(".details_view", id=exc.run.id), _("Show it")), "warning")
        except ImportRefused as exc:
            flash(str(exc), "error")
        else:
            flash(_("Confirmed: the report is being applied."), "success")
        return redirect(self.get_url(".details_view", id=run_id))

    @expose("/discard/<int:run_id>/", methods=("POST",))
    def discard_view(self, run_id: int) -> Any:
        """Drop a held run's staged report without changing any offer."""
        if int_in_range(run_id) is None:
            abort(404)
        if not self.csrf_valid():
            return redirect(self.get_url(".details_view", id=run_id))
        if discard_run(run_id, current_amazon.current_user_name()):
            flash(_("Discarded: no offer was changed."), "success")
        else:
            flash(_("This import is no longer waiting for confirmation."), "warning")
        return redirect(self.get_url(".details_view", id=run_id))

    @expose("/cancel/<int:run_id>/", methods=("POST",))
    def cancel_view(self, run_id: int) -> Any:
        """*Cancel import* on the run page."""
        if int_in_range(run_id) is None:
            abort(404)
        if self.csrf_valid():
            cancel_from_view(run_id)
        return redirect(self.get_url(".details_view", id=run_id))
