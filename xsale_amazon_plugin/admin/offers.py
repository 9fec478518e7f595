"""Offers: the mapping workspace (default view: offers without a linked product)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import flash, redirect, request, url_for
from flask_admin import expose
from flask_admin.actions import action
from flask_admin.contrib.sqla.filters import FilterEmpty, FilterEqual, IntEqualFilter
from markupsafe import Markup
from sqlalchemy import orm

from ..api import product_label
from ..babel import gettext as _
from ..babel import lazy_gettext as _l
from ..babel import ngettext
from ..linking import autolink, link_offers, unlink_offers
from ..marketplaces import MARKETPLACES, get_marketplace
from ..proxies import current_amazon
from .base import PluginModelView
from .shared import integration_options

VIEWS = ("unlinked", "linked", "all")
#: The list counts at most this many offers; above, the count reads "10,000+" (see CappedCount).
COUNT_CAP = 10_000


class CappedCount(int):
    """A row count that stopped at ``COUNT_CAP + 1``: pages like a number, prints "10,000+"."""

    def __str__(self) -> str:
        return f"{COUNT_CAP:,}+"

    def __html__(self) -> str:
        return str(self)


class CappedCountQuery(orm.Query):
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
    return f"{model.price} {model.currency or ''}".strip() if model.price is not None else "—"


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
        _("removed"), model.removed_at.strftime("%Y-%m-%d")
    )




class OfferView(PluginModelView):
    """The offers workspace: unlinked / linked / all offers, search, filters, linking actions."""
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
        "fulfillment_channel": _channel,
        "integration": _integration,
        "product": _product,
        "removed_at": _removed,
    }
    column_formatters_detail = column_formatters
    column_sortable_list = ("seller_sku", "asin", "name", "price", "quantity", "status",
                            "removed_at")
    column_searchable_list = ("seller_sku", "asin", "product_id", "name")
    column_default_sort = ("id", True)

    def __init__(self, model: Any, db: Any, **kwargs: Any) -> None:
        integ = model.integration.property.mapper.class_
        self.column_filters = [
            IntEqualFilter(model.integration_id, _l("Integration"), options=integration_options),
            FilterEqual(integ.marketplace, _l("Marketplace"),
                        options=[(c, c) for c in MARKETPLACES]),
            FilterEqual(integ.account_type, _l("Account type"),
                        options=[("FBA", "FBA"), ("FBM", "FBM")]),
            FilterEqual(model.status, _l("Status"),
                        options=[("Active", "Active"), ("Inactive", "Inactive"),
                                 ("Incomplete", "Incomplete")]),
            FilterEmpty(model.removed_at, _l("Removed")),
        ]
        super().__init__(model, db, **kwargs)

    # -- the three views: unlinked (default), linked, all ------------------------------------
    def current_mapping_view(self) -> str:
        value = request.args.get("view", "unlinked")
        return value if value in VIEWS else "unlinked"

    def _scoped(self, query: Any) -> Any:
        m = current_amazon.models
        link = m.OfferProductLink
        has_link = sa.exists().where(link.offer_id == m.AmazonOffer.id)
        view = self.current_mapping_view()
        if view == "unlinked":
            return query.filter(~has_link)
        if view == "linked":
            return query.filter(has_link)
        return query

    def get_query(self) -> Any:
        link = current_amazon.models.OfferProductLink
        # The list shows each row's link and linked product: load them with the page instead
        # of two lazy loads per row (Flask-Admin already joinedloads the integration column).
        return (
            self._scoped(super().get_query())
            .join(self.model.integration)
            .options(orm.selectinload(self.model.link).joinedload(link.product))
        )

    def get_count_query(self) -> Any:
        session = super().get_count_query().session  # the request's Session, however passed
        query = CappedCountQuery([sa.func.count("*")], session=session).select_from(self.model)
        query.capped_order = self.model.id.desc()
        return self._scoped(query).join(self.model.integration)

    # -- search ---------------------------------------------------------------------------------
    def _search_clause(self, term: str) -> Any:
        """Criteria of one search term (terms are ANDed, like Flask-Admin's own search).

        SKU, ASIN and product ID match by prefix (``=term``: exactly), served by btree
        ``text_pattern_ops`` indexes on PostgreSQL; SKU and product ID are case-sensitive, the
        ASIN is compared upper-cased. The name matches as a case-insensitive substring - a
        sequential scan on PostgreSQL, so only for terms of 3+ characters that do not look like
        an identifier (no digit); ``"name:term"`` forces a name search.
        """
        m = self.model
        if term.startswith("name:"):
            return m.name.icontains(term[5:], autoescape=True)
        exact = term.startswith("=")
        if exact or term.startswith("^"):
            term = term[1:]
        if not term:
            return sa.true()
        if exact:
            clauses = [m.seller_sku == term, m.asin == term.upper(), m.product_id == term]
        else:
            clauses = [
                m.seller_sku.startswith(term, autoescape=True),
                m.asin.startswith(term.upper(), autoescape=True),
                m.product_id.startswith(term, autoescape=True),
            ]
            if len(term) >= 3 and not any(ch.isdigit() for ch in term):
                clauses.append(m.name.icontains(term, autoescape=True))
        return sa.or_(*clauses)

    def _apply_search(self, query: Any, count_query: Any, joins: Any, count_joins: Any,
                      search: str) -> Any:
        for term in search.split():
            clause = self._search_clause(term)
            query = query.filter(clause)
            if count_query is not None:
                count_query = count_query.filter(clause)
        return query, count_query, joins, count_joins

    def render(self, template: str, **kwargs: Any) -> str:
        if template == self.list_template:
            kwargs["mapping_view"] = self.current_mapping_view()
            args = {k: v for k, v in request.args.items() if k not in ("view", "page")}
            kwargs["mapping_urls"] = {
                key: self.get_url(".index_view", **args, view=key) for key in VIEWS
            }
            kwargs["link_form"] = self.csrf_form()
            kwargs["product_search_url"] = url_for("xsale_amazon.product_search")
        return super().render(template, **kwargs)

    # -- per-row link / unlink -----------------------------------------------------------------
    @expose("/link/", methods=("POST",))
    def link_view(self) -> Any:

        back = request.form.get("url") or self.get_url(".index_view")
        if not self.csrf_valid():
            return redirect(back)
        product_id = request.form.get("product_id", "").strip()
        offer_ids = request.form.getlist("offer_id")
        if not product_id or not offer_ids:
            flash(_("Choose a product to link the offer to."), "error")
            return redirect(back)
        try:
            count = link_offers(offer_ids, product_id, by=current_amazon.current_user_name())
        except (LookupError, ValueError) as exc:
            flash(str(exc), "error")
            return redirect(back)
        flash(ngettext("Linked %(num)s offer.", "Linked %(num)s offers.", count), "success")
        return redirect(back)

    @expose("/unlink/", methods=("POST",))
    def unlink_view(self) -> Any:

        back = request.form.get("url") or self.get_url(".index_view")
        if not self.csrf_valid():
            return redirect(back)
        try:
            count = unlink_offers(request.form.getlist("offer_id"))
        except ValueError as exc:
            flash(str(exc), "error")
            return redirect(back)
        flash(ngettext("Unlinked %(num)s offer.", "Unlinked %(num)s offers.", count), "success")
        return redirect(back)

    # -- bulk actions ---------------------------------------------------------------------------
    @action("link", _l("Link to the chosen product"))
    def action_link(self, ids: list[str]) -> Any:

        product_id = (request.form.get("product_id") or "").strip()
        if not product_id:
            flash(_("Choose a product in the 'Link selected to' box first."), "error")
            return None
        try:
            count = link_offers(ids, product_id, by=current_amazon.current_user_name())
        except (LookupError, ValueError) as exc:
            flash(str(exc), "error")
            return None
        flash(ngettext("Linked %(num)s offer.", "Linked %(num)s offers.", count), "success")
        return None

    @action("unlink", _l("Unlink"), _l("Remove the product links of the selected offers?"))
    def action_unlink(self, ids: list[str]) -> Any:

        try:
            count = unlink_offers(ids)
        except ValueError as exc:
            flash(str(exc), "error")
            return None
        flash(ngettext("Unlinked %(num)s offer.", "Unlinked %(num)s offers.", count), "success")
        return None

    def _autolink(self, ids: list[str], by: str) -> None:

        try:
            result = autolink(by, offer_ids=ids, user=current_amazon.current_user_name())
        except ValueError as exc:
            flash(str(exc), "error")
            return None
        message = _(
            "Auto-link by %(key)s: linked %(linked)s, ambiguous %(ambiguous)s, no match "
            "%(no_match)s, already linked %(already)s.",
            key=by.upper(), linked=result.linked, ambiguous=result.ambiguous,
            no_match=result.no_match, already=result.already_linked,
        )
        if result.ambiguous_examples:
            message += " " + _("Ambiguous: %(skus)s", skus=", ".join(result.ambiguous_examples))
        flash(message, "success" if result.linked else "info")
        return None

    @action("autolink_sku", _l("Auto-link by SKU"))
    def action_autolink_sku(self, ids: list[str]) -> Any:
        return self._autolink(ids, "sku")

    @action("autolink_ean", _l("Auto-link by EAN"))
    def action_autolink_ean(self, ids: list[str]) -> Any:
        return self._autolink(ids, "ean")

    @action("autolink_asin", _l("Auto-link by ASIN"))
    def action_autolink_asin(self, ids: list[str]) -> Any:
        return self._autolink(ids, "asin")

    def is_action_allowed(self, name: str) -> bool:
        if name == "autolink_asin" and current_amazon.product_attr("asin") is None:
            return False
        return super().is_action_allowed(name)
