"""Offers: the mapping workspace (default view: offers without a linked product)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, jsonify, redirect, request, url_for
from flask_admin import expose
from flask_admin.actions import action
from flask_admin.helpers import is_safe_url
from markupsafe import Markup, escape
from sqlalchemy import orm

from ..amazon.marketplaces import get_marketplace
from ..babel import gettext as _
from ..babel import lazy_gettext as _l
from ..babel import ngettext
from ..formatting import (
    format_count,
    format_date,
    format_money,
    format_number,
    format_timestamp,
    offer_status_label,
)
from ..linking.autolink_job import (
    AutoLinkRequest,
    AutoLinkUnavailable,
    run_is_stalled,
    run_result,
    start_autolink,
)
from ..linking.autolink_job import inline_limit as autolink_inline_limit
from ..linking.links import AutoLinkResult, link_offers, unlink_offers
from ..linking.offer_scope import (
    AUTOLINK_KEYS,
    MAPPING_VIEWS,
    OfferScope,
    count_offers,
    search_criteria,
    view_criterion,
)
from ..models import int_in_range
from ..proxies import current_amazon
from .api import product_label
from .base import PluginModelView
from .offer_filters import ScopeFilter, offer_filters
from .shared import integration_options

VIEWS = MAPPING_VIEWS
#: The list counts at most this many offers; above, the count reads "10,000+" (see CappedCount).
COUNT_CAP = 10_000


class CappedCount(int):
    """A row count that stopped at ``COUNT_CAP + 1``: pages like a number, prints "10,000+"."""

    #: What :func:`~xsale_amazon_plugin.formatting.format_count` shows, followed by "+".
    at_least = COUNT_CAP

    def __str__(self) -> str:
        return f"{COUNT_CAP:,}+"

    def __html__(self) -> str:
        return str(self)


class _CappedCountQuery(orm.Query):
    """The pager's count query: counts at most ``COUNT_CAP + 1`` matching rows.

    Flask-Admin adds the search and filter criteria to this query and then calls
    :meth:`scalar`. An exact ``count(*)`` of a million unlinked offers is a full scan on every
    page view; counting a LIMITed subquery reads at most ``COUNT_CAP + 1`` rows and is exact
    below the cap.
    """

    #: Scan order of the capped count; the list's own order (newest first), where unlinked
    #: offers are usually found at once.
    capped_order: Any = None

    def scalar(self) -> Any:
        query = self.with_entities(sa.literal(1).label("one"))
        if self.capped_order is not None:
            query = query.order_by(self.capped_order)
        capped = query.limit(COUNT_CAP + 1).subquery()
        count = self.session.execute(
            sa.select(sa.func.count()).select_from(capped)
        ).scalar_one()
        return CappedCount(count) if count > COUNT_CAP else count


def _safe_back_url(url: str | None, default: str) -> str:
    """Where to go after a POST: the form's return URL when it stays on this site."""
    return url if url and is_safe_url(url) else default


def _asin(view: Any, context: Any, model: Any, name: str) -> Markup:
    if not model.asin:
        return Markup('<span class="text-muted">—</span>')
    try:
        url = get_marketplace(model.integration.marketplace).product_url(model.asin)
    except KeyError:
        return Markup("{}").format(model.asin)
    return Markup('<a href="{}" target="_blank" rel="noopener noreferrer">{}</a>').format(
        url, model.asin
    )


def _price(view: Any, context: Any, model: Any, name: str) -> str:
    return format_money(model.price, model.currency)


def _quantity(view: Any, context: Any, model: Any, name: str) -> str:
    return format_number(model.quantity)


def _status(view: Any, context: Any, model: Any, name: str) -> str:
    return offer_status_label(model.status)


def _timestamp(view: Any, context: Any, model: Any, name: str) -> str:
    return format_timestamp(getattr(model, name))


def _channel(view: Any, context: Any, model: Any, name: str) -> Markup:
    kind = "FBA" if model.is_fba else "FBM"
    return Markup('<span class="badge badge-light" title="{}">{}</span>').format(
        model.fulfillment_channel or "", kind
    )


def _integration(view: Any, context: Any, model: Any, name: str) -> str:
    integ = model.integration
    return f"{integ.name} ({integ.marketplace} {integ.account_type})"


def _product(view: Any, context: Any, model: Any, name: str) -> Markup:
    link = model.link
    if link is None:
        return Markup('<span class="badge badge-warning">{}</span>').format(_("not linked"))
    label = product_label(link.product) if link.product is not None else str(link.product_id)
    endpoint = current_amazon.settings.product_admin_endpoint
    if endpoint:
        try:
            url = url_for(f"{endpoint}.edit_view", id=link.product_id)
            return Markup('<a href="{}">{}</a>').format(url, label)
        except Exception:
            pass
    return Markup("{}").format(label)


def _removed(view: Any, context: Any, model: Any, name: str) -> Markup:
    if model.removed_at is None:
        return Markup("")
    return Markup('<span class="badge badge-secondary">{} {}</span>').format(
        _("removed"), format_date(model.removed_at)
    )


def _no_offers_yet_message() -> Markup:
    """What the offers list says before any offer was imported: where to import them."""
    text = escape(_("No offers have been imported yet. Open an integration in "
                    "%(integrations)s and click “Import offers”."))
    try:
        target = Markup('<a href="{}">{}</a>').format(
            url_for("xsale_amazon_integration.index_view"), _("Integrations"))
    except Exception:  # the host placed the views under other endpoints
        target = escape(_("Integrations"))
    return Markup(text) % {"integrations": target}


class OfferView(PluginModelView):
    list_template = "xsale_amazon/admin/offer_list.html"
    can_create = False
    can_edit = False
    can_delete = False
    can_view_details = True
    can_set_page_size = True
    page_size_options = (20, 50, 100, 500)
    column_list = ("seller_sku", "asin", "name", "price", "quantity", "fulfillment_channel",
                   "status", "integration", "product", "removed_at")
    column_details_list = ("seller_sku", "asin", "name", "listing_id", "price", "quantity",
                           "fulfillment_channel", "status", "product_id", "product_id_type",
                           "open_date", "open_date_raw", "integration", "product",
                           "first_seen_at", "last_seen_at", "removed_at")
    column_labels = {
        "seller_sku": _l("SKU"),
        "asin": "ASIN",
        "name": _l("Name"),
        "price": _l("Price"),
        "quantity": _l("Quantity"),
        "fulfillment_channel": _l("Channel"),
        "status": _l("Status"),
        "integration": _l("Integration"),
        "product": _l("Product"),
        "removed_at": _l("Removed"),
        "listing_id": _l("Listing ID"),
        "product_id": _l("Product ID (EAN/UPC)"),
        "product_id_type": _l("Product ID type"),
        "open_date": _l("Open date"),
        "open_date_raw": _l("Open date (as reported)"),
        "first_seen_at": _l("First seen"),
        "last_seen_at": _l("Last changed"),
    }
    column_formatters = {
        "asin": _asin,
        "price": _price,
        "quantity": _quantity,
        "status": _status,
        "fulfillment_channel": _channel,
        "integration": _integration,
        "product": _product,
        "removed_at": _removed,
    }
    column_formatters_detail = {
        **column_formatters,
        "open_date": _timestamp,
        "first_seen_at": _timestamp,
        "last_seen_at": _timestamp,
        "removed_at": _timestamp,
    }
    column_sortable_list = ("seller_sku", "asin", "name", "price", "quantity", "status",
                            "removed_at")
    column_searchable_list = ("seller_sku", "asin", "product_id", "name")
    column_default_sort = ("id", True)

    def __init__(self, model: Any, db: Any, **kwargs: Any) -> None:
        self.column_filters = offer_filters(model)
        super().__init__(model, db, **kwargs)

    # -- the three views: unlinked (default), linked, all ------------------------------------
    def current_mapping_view(self) -> str:
        value = request.args.get("view", "unlinked")
        return value if value in VIEWS else "unlinked"

    def _scoped(self, query: Any) -> Any:
        criterion = view_criterion(self.current_mapping_view())
        return query if criterion is None else query.filter(criterion)

    def get_query(self) -> Any:
        link = current_amazon.models.OfferProductLink
        # The list shows each row's link and linked product: load them with the page instead
        # of two lazy loads per row (Flask-Admin already joinedloads the integration column).
        # No join here: the filters are conditions on the offer table (see offer_filters).
        return self._scoped(super().get_query()).options(
            orm.selectinload(self.model.link).joinedload(link.product)
        )

    def get_count_query(self) -> Any:
        session = super().get_count_query().session  # the request's Session, however passed
        query = _CappedCountQuery([sa.func.count("*")], session=session).select_from(self.model)
        query.capped_order = self.model.id.desc()
        return self._scoped(query)

    # -- search ---------------------------------------------------------------------------------
    def _apply_search(self, query: Any, count_query: Any, joins: Any, count_joins: Any,
                      search: str) -> Any:
        for clause in search_criteria(search):
            query = query.filter(clause)
            if count_query is not None:
                count_query = count_query.filter(clause)
        return query, count_query, joins, count_joins

    def search_placeholder(self) -> str:
        return _("SKU, ASIN, EAN or name")

    # -- the scope the operator is looking at --------------------------------------------------
    def _active_filters(self) -> list[tuple[str, str]]:
        """(field, value) of the filters in the query string, as the list applies them."""
        out = []
        for idx, _name, value in self._get_list_filter_args() or ():
            flt = self._filters[idx] if self._filters else None
            if isinstance(flt, ScopeFilter):
                out.append((flt.field, str(value)))
        return out

    def current_scope(self) -> OfferScope:
        search = self._get_list_extra_args().search or ""
        return OfferScope(view=self.current_mapping_view(), filters=tuple(self._active_filters()),
                          search=search)

    def _elsewhere(self, scope: OfferScope) -> list[dict[str, str]]:
        """Links to the other mapping views when a search found nothing in this one."""
        out = []
        for view in ("linked", "unlinked", "all"):
            if view == scope.view:
                continue
            other = OfferScope(view=view, filters=scope.filters, search=scope.search)
            found = count_offers(other.criteria(), cap=COUNT_CAP)
            if not found:
                continue
            num = CappedCount(found) if found > COUNT_CAP else found
            texts = {
                "linked": ngettext("%(shown)s match among linked offers",
                                   "%(shown)s matches among linked offers", found,
                                   shown=format_count(num)),
                "unlinked": ngettext("%(shown)s match among offers without a linked product",
                                     "%(shown)s matches among offers without a linked product",
                                     found, shown=format_count(num)),
                "all": ngettext("%(shown)s match among all offers",
                                "%(shown)s matches among all offers", found,
                                shown=format_count(num)),
            }
            args = {k: v for k, v in request.args.items() if k not in ("view", "page")}
            out.append({"view": view, "text": texts[view],
                        "url": self.get_url(".index_view", **args, view=view)})
        return out

    def _autolink_context(self, scope: OfferScope, listed: int | None) -> dict[str, Any]:
        """The auto-link dialog; ``listed`` is the list's own (capped) count of the scope."""
        state = current_amazon
        keys = [(k, k.upper()) for k in AUTOLINK_KEYS if state.product_attr(k) is not None]
        count = listed if listed is not None else count_offers(scope.criteria(), cap=COUNT_CAP)
        labels = {str(flt.field): str(flt.name) for flt in self._filters or ()
                  if isinstance(flt, ScopeFilter)}
        described = [f"{labels.get(f, f)}: {v}" for f, v in scope.filters]
        if scope.search:
            described.append(_("search “%(search)s”", search=scope.search))
        return {
            "key_choices": keys,
            "scope_json": json.dumps(scope.to_json()),
            "filter_count": CappedCount(count) if count > COUNT_CAP else count,
            "filter_description": "; ".join(described),
            "integrations": integration_options(),
            "background_from": autolink_inline_limit(),
        }

    def render(self, template: str, **kwargs: Any) -> str:
        if template == self.list_template:
            kwargs["mapping_view"] = self.current_mapping_view()
            args = {k: v for k, v in request.args.items() if k not in ("view", "page")}
            kwargs["mapping_urls"] = {
                key: self.get_url(".index_view", **args, view=key) for key in VIEWS
            }
            kwargs["link_form"] = self.csrf_form()
            kwargs["product_search_url"] = url_for("xsale_amazon.product_search")
            kwargs["format_count"] = format_count
            scope = self.current_scope()
            kwargs["autolink"] = self._autolink_context(scope, kwargs.get("count"))
            data = kwargs.get("data")
            if scope.search and data is not None and not len(data) and not kwargs.get("page"):
                kwargs["elsewhere"] = self._elsewhere(scope)
        return super().render(template, **kwargs)

    def get_empty_list_message(self) -> str:
        if not request.args.get("search") and not count_offers([], cap=0):
            return _no_offers_yet_message()
        if self.current_mapping_view() == "unlinked" and not request.args.get("search"):
            return _("Every offer here is linked to a product.")
        return _("No offers match.")

    # -- link / unlink (one offer from its row, or the selected ones) ------------------------
    def _wants_json(self) -> bool:
        return request.accept_mimetypes.best == "application/json"

    def _link_failed(self, message: str, back: str) -> Any:
        if self._wants_json():
            return jsonify({"error": message}), 400
        flash(message, "error")
        return redirect(back)

    @expose("/link/", methods=("POST",))
    def link_view(self) -> Any:
        back = _safe_back_url(request.form.get("url"), self.get_url(".index_view"))
        if not self.csrf_form().validate():
            return self._link_failed(_("The form expired; reload the page and try again."), back)
        product_id = request.form.get("product_id", "").strip()
        offer_ids = request.form.getlist("offer_id")
        if not offer_ids:
            return self._link_failed(_("Tick at least one offer in the list first."), back)
        if not product_id:
            return self._link_failed(_("Choose a product first: search by SKU, EAN or name and "
                                       "pick one from the list."), back)
        try:
            count = link_offers(offer_ids, product_id, by=current_amazon.current_user_name())
        except LookupError:
            return self._link_failed(_("The chosen product does not exist (any more); choose "
                                       "another one."), back)
        except ValueError:
            return self._link_failed(_("The selected offers are not valid; reload the page and "
                                       "select them again."), back)
        flash(ngettext("Linked %(num)s offer.", "Linked %(num)s offers.", count), "success")
        if self._wants_json():
            return jsonify({"linked": count})
        return redirect(back)

    @expose("/unlink/", methods=("POST",))
    def unlink_view(self) -> Any:
        back = _safe_back_url(request.form.get("url"), self.get_url(".index_view"))
        if not self.csrf_valid():
            return redirect(back)
        try:
            count = unlink_offers(request.form.getlist("offer_id"))
        except ValueError:
            flash(_("The selected offers are not valid; reload the page and select them "
                    "again."), "error")
            return redirect(back)
        flash(ngettext("Unlinked %(num)s offer.", "Unlinked %(num)s offers.", count), "success")
        return redirect(back)

    # -- "With selected" (confirmation: the page's styled dialog, see offers.js) -------------
    @action("unlink", _l("Unlink"))
    def action_unlink(self, ids: list[str]) -> Any:
        try:
            count = unlink_offers(ids)
        except ValueError:
            flash(_("The selected offers are not valid; reload the page and select them "
                    "again."), "error")
            return None
        flash(ngettext("Unlinked %(num)s offer.", "Unlinked %(num)s offers.", count), "success")
        return None

    # -- auto-link -----------------------------------------------------------------------------
    @expose("/autolink/", methods=("POST",))
    def autolink_view(self) -> Any:
        back = _safe_back_url(request.form.get("url"), self.get_url(".index_view"))
        if not self.csrf_valid():
            return redirect(back)
        by = request.form.get("by", "sku")
        if by not in AUTOLINK_KEYS or current_amazon.product_attr(by) is None:
            flash(_("Choose what to compare: SKU, EAN or ASIN."), "error")
            return redirect(back)
        target = request.form.get("target", "filter")
        if target == "selected":
            ids = request.form.getlist("offer_id")
            if not ids:
                flash(_("Tick at least one offer in the list first."), "error")
                return redirect(back)
            request_scope = AutoLinkRequest.for_offers(ids)
        elif target == "integration":
            integration_id = int_in_range(request.form.get("integration_id"))
            if integration_id is None:
                flash(_("Choose an integration."), "error")
                return redirect(back)
            request_scope = AutoLinkRequest.for_scope(
                OfferScope(filters=(("integration", str(integration_id)),)))
        else:
            try:
                data = json.loads(request.form.get("scope") or "{}")
            except ValueError:
                data = {}
            request_scope = AutoLinkRequest.for_scope(
                OfferScope.from_json(data if isinstance(data, dict) else {}))
        try:
            outcome = start_autolink(by, request_scope, user=current_amazon.current_user_name())
        except AutoLinkUnavailable as exc:
            flash(exc.message(), "error")
            return redirect(back)
        if outcome.run_id is not None:
            flash(_("Auto-link runs in the background; this page shows its progress."), "info")
            return redirect(self.get_url(".autolink_run_view", run_id=outcome.run_id))
        summary = _autolink_summary(by, outcome.result, self.review_url(by, request_scope))
        flash(summary, "success" if outcome.result.linked else "info")
        return redirect(back)

    def review_url(self, by: str, request_scope: AutoLinkRequest) -> str:
        """The unlinked offers of the request's scope whose key matches several products."""
        filters = list(request_scope.scope.filters) if request_scope.scope else []
        filters = [f for f in filters if f[0] != "ambiguous"] + [("ambiguous", by)]
        args: dict[str, Any] = {"view": "unlinked"}
        positions = {str(flt.field): idx for idx, flt in enumerate(self._filters or ())
                     if isinstance(flt, ScopeFilter)}
        for n, (name, value) in enumerate(filters):
            idx = positions[name]
            args[f"flt{n}_{self.get_filter_arg(idx, self._filters[idx])}"] = value
        if request_scope.scope and request_scope.scope.search:
            args["search"] = request_scope.scope.search
        return self.get_url(".index_view", **args)

    @expose("/autolink/<int:run_id>/")
    def autolink_run_view(self, run_id: int) -> Any:
        m = current_amazon.models
        run = current_amazon.db.session.get(m.AutoLinkRun, run_id) if run_id < 2**31 else None
        if run is None:
            abort(404)
        request_scope = AutoLinkRequest.from_json(run.request)
        result = run_result(run)
        return self.render(
            "xsale_amazon/admin/autolink_run.html", run=run,
            summary=_autolink_summary(run.key, result, self.review_url(run.key, request_scope))
            if not run.is_active else None,
            stalled=run_is_stalled(run),
            progress_url=url_for("xsale_amazon.autolink_status", run_id=run.id),
            offers_url=self.get_url(".index_view"),
            format_count=format_count,
        )


def _autolink_summary(by: str, result: AutoLinkResult, review: str) -> Markup:
    """The auto-link result in one sentence whose numbers add up, with the review link."""
    text = Markup("{}").format(_(
        "Auto-link by %(key)s checked %(total)s offers: %(linked)s linked, %(ambiguous)s "
        "ambiguous, %(no_match)s without a matching product, %(no_key)s without %(key)s to "
        "compare, %(already)s already linked.",
        key=by.upper(), total=format_count(result.total), linked=format_count(result.linked),
        ambiguous=format_count(result.ambiguous), no_match=format_count(result.no_match),
        no_key=format_count(result.no_key), already=format_count(result.already_linked),
    ))
    if result.ambiguous:
        text += Markup(' <a class="alert-link xa-review-ambiguous" href="{}">{}</a>').format(
            review, _("Review the %(num)s ambiguous offers", num=format_count(result.ambiguous)))
    return text
