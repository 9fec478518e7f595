"""Integrations: one per marketplace and account type, with write-only LWA credentials."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, jsonify, redirect, request, url_for
from flask_admin import expose
from flask_admin.actions import action
from flask_admin.model.template import EndpointLinkRowAction
from flask_babel import LazyString
from markupsafe import Markup
from wtforms import PasswordField
from wtforms.validators import Length, Optional, StopValidation, ValidationError

from ..amazon.marketplaces import MARKETPLACES
from ..babel import gettext as _
from ..babel import lazy_gettext as _l
from ..babel import ngettext
from ..formatting import format_time, format_timestamp, marketplace_label
from ..importing.integration_service import (
    IntegrationBusy,
    check_connection,
    delete_integration,
    footprint,
    reusable_report,
)
from ..importing.lifecycle import active_run
from ..importing.messages import asin_instruction, connection_result_text
from ..models import int_in_range
from ..proxies import current_amazon
from ..timeutil import parse_amazon_time
from .base import PluginModelView
from .schedule import (
    ScheduleViewMixin,
    integration_freshness_formatter,
    integration_schedule_formatter,
)
from .shared import (
    cancel_from_view,
    parse_report_choice,
    start_import_from_view,
    status_badge,
)

SELLER_ID_PATTERN = r"^[A-Z0-9]{5,20}$"
CLIENT_ID_PATTERN = r"^amzn1\.application-oa2-client\.[A-Za-z0-9]{1,200}$"
REFRESH_TOKEN_PATTERN = r"^Atzr\|\S{1,1990}$"


def _last_run_formatter(view: Any, context: Any, model: Any, name: str) -> Markup:
    run = view.last_runs().get(model.id)
    if run is None:
        return Markup('<span class="text-muted">{}</span>').format(_("never"))
    url = url_for("xsale_amazon_run.details_view", id=run.id)
    when = run.finished_at or run.created_at
    return Markup("{} <small>{}</small>").format(
        status_badge(run.status, url), format_timestamp(when)
    )


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _not_blank(form: Any, field: Any) -> None:
    if not (field.data or "").strip():
        raise ValidationError(_("Enter a name."))


def _format(pattern: str, message: Any, *, required: Any = None) -> Any:
    """A validator matching ``pattern``. Messages are rendered to ``str`` when raised:
    Flask-Admin shows only ``str`` field errors (a lazy string would be dropped)."""

    def check(form: Any, field: Any) -> None:
        value = (field.data or "").strip()
        if not value:
            if required is not None:
                raise StopValidation(str(required))
            return
        if not re.match(pattern, value):
            raise ValidationError(str(message))

    return check


def _offer_count_formatter(view: Any, context: Any, model: Any, name: str) -> Markup:
    count = view.offer_counts().get(model.id, 0)
    url = url_for("xsale_amazon_offer.index_view", flt0_0=model.id) if count else None
    if url:
        return Markup('<a href="{}">{}</a>').format(url, count)
    return Markup("{}").format(count)


class IntegrationView(ScheduleViewMixin, PluginModelView):
    """Integrations with write-only credentials, *Test connection*, *Import offers* (with the
    report choice), *Cancel import*, scheduled imports and a delete that names what goes."""
    edit_template = "xsale_amazon/admin/integration_edit.html"
    create_template = "xsale_amazon/admin/integration_create.html"
    column_list = ("name", "marketplace", "account_type", "seller_id", "active", "last_import",
                   "last_success", "schedule", "offers")
    column_labels = {
        "name": _l("Name"),
        "marketplace": _l("Marketplace"),
        "account_type": _l("Account type"),
        "seller_id": _l("Seller ID"),
        "lwa_client_id": _l("LWA client ID"),
        "new_lwa_client_secret": _l("LWA client secret"),
        "new_refresh_token": _l("Refresh token"),
        "active": _l("Active"),
        "last_import": _l("Last import"),
        "offers": _l("Offers"),
        "last_success": _l("Last success"),
        "schedule": _l("Schedule"),
    }
    column_formatters = {"last_import": _last_run_formatter, "offers": _offer_count_formatter,
                         "last_success": integration_freshness_formatter,
                         "schedule": integration_schedule_formatter}
    column_searchable_list = ("name", "seller_id")
    column_filters = ("marketplace", "account_type", "active")
    column_default_sort = "name"
    form_columns = ("name", "marketplace", "account_type", "seller_id", "lwa_client_id",
                    "new_lwa_client_secret", "new_refresh_token", "active")
    form_choices = {
        # Lazy labels: the country name follows the operator's language.
        "marketplace": [(code, LazyString(marketplace_label, code)) for code in MARKETPLACES],
        "account_type": [("FBM", "FBM"), ("FBA", "FBA")],
    }
    form_extra_fields = {
        "new_lwa_client_secret": PasswordField(
            _l("LWA client secret"), validators=[Optional(), Length(max=500)],
            render_kw={"autocomplete": "new-password"},
        ),
        "new_refresh_token": PasswordField(
            _l("Refresh token"),
            validators=[Optional(), Length(max=2000), _format(
                REFRESH_TOKEN_PATTERN,
                _l("A refresh token starts with Atzr| (copy it whole from Seller Central's "
                   "app authorisation)."))],
            render_kw={"autocomplete": "new-password"},
        ),
    }
    form_args = {
        "name": {"validators": [_not_blank, Length(max=120)], "filters": [_strip]},
        "seller_id": {
            "validators": [Length(max=40), _format(
                SELLER_ID_PATTERN,
                _l("A seller ID (merchant token) is 5 to 20 letters and digits, e.g. "
                   "A2EUQ1WTGCTBG2 (Seller Central → Settings → Account Info → Merchant Token)."),
                required=_l("Enter the seller ID (merchant token)."))],
            "filters": [_upper],
        },
        "lwa_client_id": {
            "validators": [Length(max=255), _format(CLIENT_ID_PATTERN, _l(
                "An LWA client ID looks like amzn1.application-oa2-client.0123abcd… "
                "(Developer Console → your app → LWA credentials)."))],
            "filters": [_strip],
        },
    }
    can_view_details = False
    # Deleting goes through a confirmation page naming what goes (see delete_confirm_view).
    can_delete = False
    column_extra_row_actions = [
        EndpointLinkRowAction("fa fa-trash", ".delete_confirm_view", title=_l("Delete")),
    ]

    def last_runs(self) -> dict[int, Any]:
        run = current_amazon.models.ImportRun
        latest = (
            sa.select(sa.func.max(run.id)).group_by(run.integration_id).scalar_subquery()
        )
        rows = current_amazon.db.session.execute(sa.select(run).where(run.id.in_(latest))).scalars()
        return {r.integration_id: r for r in rows}

    def offer_counts(self) -> dict[int, int]:
        offer = current_amazon.models.AmazonOffer
        rows = current_amazon.db.session.execute(
            sa.select(offer.integration_id, sa.func.count())
            .where(offer.removed_at.is_(None))
            .group_by(offer.integration_id)
        )
        return dict(rows.all())

    def on_model_change(self, form: Any, model: Any, is_created: bool) -> None:
        # Secrets are write-only: a blank field keeps the stored value.
        if form.new_lwa_client_secret.data:
            model.lwa_client_secret = form.new_lwa_client_secret.data.strip()
        if form.new_refresh_token.data:
            model.refresh_token = form.new_refresh_token.data.strip()
        for name in ("new_lwa_client_secret", "new_refresh_token"):
            model.__dict__.pop(name, None)  # populate_obj copied the plaintext onto the model

    def validate_form(self, form: Any) -> bool:
        valid = super().validate_form(form)
        if valid and hasattr(form, "seller_id") and hasattr(form, "marketplace"):
            valid = self._check_unique(form)
        return valid

    def _check_unique(self, form: Any) -> bool:
        """One integration per seller, marketplace and account type (also a DB constraint)."""
        integ = current_amazon.models.AmazonIntegration
        query = sa.select(integ).where(
            integ.seller_id == (form.seller_id.data or ""),
            integ.marketplace == form.marketplace.data,
            integ.account_type == form.account_type.data,
        )
        own_id = int_in_range(request.args.get("id", ""))
        if own_id is not None and request.endpoint == f"{self.endpoint}.edit_view":
            query = query.where(integ.id != own_id)
        clash = current_amazon.db.session.execute(query.limit(1)).scalar_one_or_none()
        if clash is None:
            return True
        form.account_type.errors = list(form.account_type.errors or []) + [_(
            "Integration \"%(name)s\" already imports %(account_type)s offers of this seller "
            "on %(marketplace)s. Edit that one instead.", name=clash.name,
            account_type=clash.account_type, marketplace=clash.marketplace)]
        return False

    def populate_secret_placeholders(self, form: Any, model: Any | None) -> None:
        """Secrets are never shown: the placeholder says whether one is stored."""
        for field, stored in (
            ("new_lwa_client_secret", model.lwa_client_secret_ciphertext if model else None),
            ("new_refresh_token", model.refresh_token_ciphertext if model else None),
        ):
            text = _("•••••••• stored — leave blank to keep it") if stored else _("not set")
            form[field].render_kw = dict(form[field].render_kw or {}, placeholder=text)

    def render(self, template: str, **kwargs: Any) -> str:
        model = kwargs.get("model")
        if template == self.create_template and kwargs.get("form") is not None:
            self.populate_secret_placeholders(kwargs["form"], None)
        if template == self.edit_template and model is not None:
            self.populate_secret_placeholders(kwargs["form"], model)
            run_model = current_amazon.models.ImportRun
            kwargs["recent_runs"] = current_amazon.db.session.execute(
                sa.select(run_model).where(run_model.integration_id == model.id)
                .order_by(run_model.id.desc()).limit(10)
            ).scalars().all()
            running = active_run(model.id)
            kwargs["active_run"] = running
            kwargs["import_form"] = self.csrf_form()
            kwargs["asin_setup_needed"] = model.marketplace_info.asin_column_needs_setup
            kwargs["asin_instruction"] = asin_instruction()
            self.look_at_alerts(model.id)
            kwargs.update(self.schedule_context(model))
            kwargs["import_blocked"] = self.import_blocked_reason(model, running)
            kwargs["reuse_window"] = current_amazon.settings.report_reuse_window
            kwargs["marketplace_label"] = marketplace_label
            kwargs["format_datetime"] = format_timestamp
        return super().render(template, **kwargs)

    @staticmethod
    def import_blocked_reason(model: Any, running: Any) -> str | None:
        """Why *Import offers* is disabled, or None when it can be used."""
        if running is not None:
            return _("An import is running.")
        if not model.active:
            return _("The integration is inactive. Activate it before importing.")
        if not model.has_credentials:
            return _("Fill in the LWA client ID, client secret and refresh token before "
                     "importing.")
        return None

    @expose("/import/<int:integration_id>/", methods=("POST",))
    def import_view(self, integration_id: int) -> Any:
        if not self.csrf_valid():
            return redirect(self.get_url(".edit_view", id=integration_id))
        mode, report_id = parse_report_choice(request.form.get("report"))
        run, error = start_import_from_view(integration_id, report_mode=mode,
                                            reuse_report_id=report_id)
        if run is not None:
            flash(_("Import queued. It can take from a dozen minutes to a dozen hours."), "success")
            return redirect(url_for("xsale_amazon_run.details_view", id=run.id))
        if error is not None and getattr(error, "run", None) is not None:
            return redirect(url_for("xsale_amazon_run.details_view", id=error.run.id))
        return redirect(self.get_url(".edit_view", id=integration_id))

    @expose("/reusable-report/<int:integration_id>/")
    def reusable_report_view(self, integration_id: int) -> Any:
        """JSON for the Import dialog: the report Amazon holds that an import could reuse."""
        integ = self._integration_or_404(integration_id)
        payload: dict[str, Any] = {"report": None}
        report = reusable_report(integ)
        if report:
            created = parse_amazon_time(report.get("createdTime"))
            payload["report"] = {
                "id": str(report["reportId"]),
                "created_at": created.isoformat() if created else None,
                "label": _("Use Amazon's report from %(time)s (faster, but changes made in "
                           "Seller Central since then are missing)",
                           time=format_time(created) if created else "?"),
            }
        response = jsonify(payload)
        response.headers["Cache-Control"] = "no-store"
        return response

    def _integration_or_404(self, integration_id: Any) -> Any:
        integ = (current_amazon.db.session.get(self.model, integration_id)
                 if int_in_range(integration_id) is not None else None)
        if integ is None:
            abort(404)
        return integ

    @expose("/test-connection/<int:integration_id>/", methods=("POST",))
    def test_connection_view(self, integration_id: int) -> Any:
        integ = self._integration_or_404(integration_id)
        if not self.csrf_valid():
            return redirect(self.get_url(".edit_view", id=integration_id))
        kind = check_connection(integ)
        flash(connection_result_text(kind), "success" if kind is None else "error")
        return redirect(self.get_url(".edit_view", id=integration_id))

    @expose("/cancel-import/<int:integration_id>/", methods=("POST",))
    def cancel_import_view(self, integration_id: int) -> Any:
        if int_in_range(integration_id) is None:
            abort(404)
        if not self.csrf_valid():
            return redirect(self.get_url(".edit_view", id=integration_id))
        running = active_run(integration_id)
        if running is None:
            flash(_("No import of this integration is running."), "warning")
        else:
            cancel_from_view(running.id)
        return redirect(self.get_url(".edit_view", id=integration_id))

    @expose("/delete/", methods=("GET", "POST"))
    def delete_confirm_view(self) -> Any:
        """Confirmation naming what goes (offers, links, runs); typing the name when links
        would be lost; *Deactivate* as the alternative that keeps everything."""
        integ = self._integration_or_404(request.values.get("id", ""))
        form = self.csrf_form()
        counts = footprint(integ.id)
        error = None
        if request.method == "POST":
            if not self.csrf_valid():
                return redirect(self.get_url(".delete_confirm_view", id=integ.id))
            if request.form.get("deactivate"):
                integ.active = False
                current_amazon.db.session.commit()
                flash(_("Integration \"%(name)s\" deactivated; its offers and links are kept.",
                        name=integ.name), "success")
                return redirect(self.get_url(".index_view"))
            elif counts.links and (request.form.get("confirm_name") or "").strip() != integ.name:
                error = _("Type the integration's name exactly to delete it.")
            else:
                name = integ.name
                try:
                    removed = delete_integration(integ.id)
                except IntegrationBusy:
                    error = _("An import of this integration is running; cancel it first.")
                else:
                    flash(_("Integration \"%(name)s\" deleted (offers: %(offers)s, links: "
                            "%(links)s, import runs: %(runs)s).", name=name, offers=removed.offers,
                            links=removed.links, runs=removed.runs), "success")
                    return redirect(self.get_url(".index_view"))
        return self.render("xsale_amazon/admin/integration_delete.html", model=integ,
                           counts=counts, form=form, error=error,
                           return_url=self.get_url(".index_view"))

    @action("import_offers", _l("Import offers"),
            _l("Import offers of the selected integrations? An import can take from a dozen "
               "minutes to a dozen hours."))
    def action_import_offers(self, ids: list[str]) -> Any:
        started = 0
        for raw in ids:
            try:
                integration_id = int(raw)
            except ValueError:
                continue
            run, _error = start_import_from_view(integration_id)
            started += run is not None
        if started:
            flash(ngettext("%(num)s import queued.", "%(num)s imports queued.", started), "success")
        return redirect(request.referrer or self.get_url(".index_view"))
