"""Integrations: one per marketplace and account type, with write-only LWA credentials."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import flash, redirect, request, url_for
from flask_admin import expose
from flask_admin.actions import action
from markupsafe import Markup
from wtforms import PasswordField
from wtforms.validators import Length, Optional

from ..babel import gettext as _
from ..babel import lazy_gettext as _l
from ..babel import ngettext
from ..lifecycle import active_run
from ..marketplaces import MARKETPLACES
from ..messages import asin_instruction
from ..proxies import current_amazon
from .base import PluginModelView
from .schedule import (
    ScheduleViewMixin,
    integration_freshness_formatter,
    integration_schedule_formatter,
)
from .shared import start_import_from_view, status_badge


def _last_run_formatter(view: Any, context: Any, model: Any, name: str) -> Markup:
    run = view.last_runs().get(model.id)
    if run is None:
        return Markup('<span class="text-muted">{}</span>').format(_("never"))
    url = url_for("xsale_amazon_run.details_view", id=run.id)
    when = run.finished_at or run.created_at
    return Markup("{} <small>{}</small>").format(
        status_badge(run.status, url), when.strftime("%Y-%m-%d %H:%M")
    )


def _offer_count_formatter(view: Any, context: Any, model: Any, name: str) -> Markup:
    count = view.offer_counts().get(model.id, 0)
    url = url_for("xsale_amazon_offer.index_view", flt0_0=model.id) if count else None
    if url:
        return Markup('<a href="{}">{}</a>').format(url, count)
    return Markup("{}").format(count)


class IntegrationView(ScheduleViewMixin, PluginModelView):
    """Integrations with write-only credentials and the *Import offers* service action."""
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
        "marketplace": [(code, f"{code} — {mp.name} ({mp.domain})")
                        for code, mp in MARKETPLACES.items()],
        "account_type": [("FBM", "FBM"), ("FBA", "FBA")],
    }
    form_extra_fields = {
        "new_lwa_client_secret": PasswordField(
            _l("LWA client secret"), validators=[Optional(), Length(max=500)],
            render_kw={"autocomplete": "new-password"},
        ),
        "new_refresh_token": PasswordField(
            _l("Refresh token"), validators=[Optional(), Length(max=2000)],
            render_kw={"autocomplete": "new-password"},
        ),
    }
    form_args = {
        "name": {"validators": [Length(min=1, max=120)]},
        "seller_id": {"validators": [Optional(), Length(max=40)]},
        "lwa_client_id": {"validators": [Optional(), Length(max=255)]},
    }
    form_widget_args = {
        "new_lwa_client_secret": {"placeholder": _l("stored encrypted, never shown")},
        "new_refresh_token": {"placeholder": _l("stored encrypted, never shown")},
    }
    can_view_details = False

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

    def populate_secret_placeholders(self, form: Any, model: Any) -> None:
        for field, stored in (("new_lwa_client_secret", model.lwa_client_secret_ciphertext),
                              ("new_refresh_token", model.refresh_token_ciphertext)):
            if stored:
                form[field].render_kw = dict(form[field].render_kw or {},
                                             placeholder=_("•••••••• (stored; blank keeps it)"))

    def render(self, template: str, **kwargs: Any) -> str:
        model = kwargs.get("model")
        if template == self.edit_template and model is not None:
            self.populate_secret_placeholders(kwargs["form"], model)
            run_model = current_amazon.models.ImportRun
            kwargs["recent_runs"] = current_amazon.db.session.execute(
                sa.select(run_model).where(run_model.integration_id == model.id)
                .order_by(run_model.id.desc()).limit(10)
            ).scalars().all()
            kwargs["active_run"] = active_run(model.id)
            kwargs["import_form"] = self.csrf_form()
            kwargs["asin_setup_needed"] = model.marketplace_info.asin_column_needs_setup
            kwargs["asin_instruction"] = asin_instruction()
            self.look_at_alerts(model.id)
            kwargs.update(self.schedule_context(model))
        return super().render(template, **kwargs)

    @expose("/import/<int:integration_id>/", methods=("POST",))
    def import_view(self, integration_id: int) -> Any:
        if not self.csrf_valid():
            return redirect(self.get_url(".edit_view", id=integration_id))
        run, error = start_import_from_view(integration_id)
        if run is not None:
            flash(_("Import queued. It can take from a dozen minutes to a dozen hours."), "success")
            return redirect(url_for("xsale_amazon_run.details_view", id=run.id))
        if error is not None and getattr(error, "run", None) is not None:
            return redirect(url_for("xsale_amazon_run.details_view", id=error.run.id))
        return redirect(self.get_url(".edit_view", id=integration_id))

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
