"""JSON endpoints of the plugin's blueprint (run progress, product search)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, jsonify, request, url_for

from ..babel import gettext
from ..formatting import format_count
from ..importing.messages import status_badge_class, status_label
from ..importing.progress import run_progress
from ..models import int_in_range
from ..proxies import current_amazon
from ..suggest.catalogue_check import rebuild_state
from ..suggest.service import IndexRebuilding, displayed, suggestions_for_offer

blueprint = Blueprint(
    "xsale_amazon",
    __name__,
    # The package directory, which holds templates/ and static/ (this module is in admin/).
    root_path=str(Path(__file__).resolve().parent.parent),
    template_folder="templates",
    static_folder="static",
    static_url_path="/static/xsale_amazon",
    url_prefix="/xsale-amazon",
)


@blueprint.app_template_global("_xa")
def _template_gettext(string: str, **variables: Any) -> str:
    """The plugin's gettext in templates (its own domain, whatever the host's is)."""
    return gettext(string, **variables)


blueprint.add_app_template_global(status_label, "xa_status_label")
blueprint.add_app_template_global(status_badge_class, "xa_status_class")


@blueprint.get("/runs/<int:run_id>.json")
def run_status(run_id: int):
    current_amazon.require_access()
    # The URL converter accepts any digits; beyond the integer column's range the database
    # raises (PostgreSQL: out of range, SQLite: OverflowError) - no such run either way.
    session = current_amazon.db.session
    run_id_ok = int_in_range(run_id)
    run = session.get(current_amazon.models.ImportRun, run_id_ok) if run_id_ok else None
    if run is None:
        abort(404)
    response = jsonify(run_progress(run))
    response.headers["Cache-Control"] = "no-store"
    return response


#: The picker counts at most this many matches ("1,000+" above).
PRODUCT_COUNT_CAP = 1000


@blueprint.get("/products/search")
def product_search():
    """Select2 product search over the host's SKU, EAN and name attributes, paged.

    ``page`` (1-based) and ``limit`` page through the matches; ``more`` says another page
    exists and ``total`` how many match (capped). With ``offer_id`` the products whose SKU
    equals the offer's SKU, or whose EAN equals the offer's EAN, come first, marked
    ``match: "sku"`` / ``"ean"``: fetched by equality (the host's key indexes), so the ordinary
    page keeps its index order instead of sorting every match by a computed rank.
    """
    current_amazon.require_access()
    # NUL: PostgreSQL text cannot hold it (the query would fail with a 500).
    term = (request.args.get("q") or "").replace("\x00", "").strip()[:100]
    limit = _int_arg("limit", 20, 1, 50)
    page = _int_arg("page", 1, 1, 10_000)
    m = current_amazon.models
    pk = m.product_pk
    session = current_amazon.db.session
    columns = [c for c in (current_amazon.product_attr(k) for k in ("sku", "ean", "name"))
               if c is not None]
    conditions = []
    if term:
        conditions.append(sa.or_(*(
            sa.cast(c, sa.String).icontains(term, autoescape=True) for c in columns
        )))
    first = _same_key_products(request.args.get("offer_id"), conditions)
    start = (page - 1) * limit
    shown: list[tuple[Any, str | None]] = list(first[start:start + limit])
    rest_start = max(start - len(first), 0)
    rest_limit = limit - len(shown)
    query = sa.select(m.product_model).where(*conditions)
    if first:
        query = query.where(pk.not_in([getattr(p, pk.key) for p, _m in first]))
    # Ordered by the first searched column only, so the host's index on it serves the order
    # (with the primary key as a tie-breaker PostgreSQL sorted every match: 1.7 s at 1M).
    rest = session.execute(
        query.order_by(*(columns[:1] or [pk])).offset(rest_start).limit(rest_limit + 1)
    ).scalars().all()
    more = len(rest) > rest_limit
    shown += [(p, None) for p in rest[:rest_limit]]
    counted = session.execute(sa.select(sa.func.count()).select_from(
        sa.select(pk).where(*conditions).limit(PRODUCT_COUNT_CAP + 1).subquery()
    )).scalar_one()
    total_label = (format_count(PRODUCT_COUNT_CAP) + "+" if counted > PRODUCT_COUNT_CAP
                   else format_count(counted))
    return jsonify({
        "results": [
            {"id": str(getattr(p, pk.key)), "text": product_label(p), "match": match}
            for p, match in shown
        ],
        "more": more,
        "total": counted,
        "total_label": total_label,
    })


#: Same-SKU / same-EAN products listed first, at most this many.
SAME_KEY_LIMIT = 10


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(int(request.args.get(name, default)), high))
    except (TypeError, ValueError):
        return default


def _same_key_products(offer_id: Any, conditions: list[Any]) -> list[tuple[Any, str]]:
    """(product, "sku" | "ean") with the offer's SKU, then its EAN; none without an offer."""
    m = current_amazon.models
    offer_pk = m.AmazonOffer.__table__.c.id
    number = int_in_range(offer_id, offer_pk) if offer_id else None
    offer = current_amazon.db.session.get(m.AmazonOffer, number) if number is not None else None
    if offer is None:
        return []
    out: list[tuple[Any, str]] = []
    seen: set[Any] = set()
    for key, value in (("sku", offer.seller_sku), ("ean", offer.product_id)):
        column = current_amazon.product_attr(key)
        if column is None or not value:
            continue
        found = current_amazon.db.session.execute(
            sa.select(m.product_model).where(column == value, *conditions)
            .order_by(m.product_pk).limit(SAME_KEY_LIMIT)
        ).scalars()
        for product in found:
            ident = getattr(product, m.product_pk.key)
            if ident not in seen and len(out) < SAME_KEY_LIMIT:
                seen.add(ident)
                out.append((product, key))
    return out


def product_label(product: Any) -> str:
    settings = current_amazon.settings
    parts = []
    for attr in (settings.product_sku_attr, settings.product_ean_attr, settings.product_name_attr):
        value = getattr(product, attr, None) if attr else None
        if value:
            parts.append(str(value))
    return " · ".join(parts) or str(product)


@blueprint.get("/autolink/<int:run_id>.json")
def autolink_status(run_id: int):
    """Progress of a background auto-link run (see :mod:`..linking.autolink_job`)."""
    current_amazon.require_access()
    run = (current_amazon.db.session.get(current_amazon.models.AutoLinkRun, run_id)
           if int_in_range(run_id) is not None else None)
    if run is None:
        abort(404)
    percent = round(100 * run.offers_done / run.offers_total) if run.offers_total else (
        0 if run.is_active else 100)
    response = jsonify({
        "id": run.id, "status": run.status, "active": run.is_active,
        "done": run.offers_done, "total": run.offers_total, "percent": min(percent, 100),
        "done_label": format_count(run.offers_done), "total_label": format_count(run.offers_total),
        "linked": run.count_linked, "ambiguous": run.count_ambiguous,
        "no_match": run.count_no_match, "no_key": run.count_no_key,
        "already_linked": run.count_already_linked,
    })
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/offers/<int:offer_id>/suggestions.json")
def offer_suggestions(offer_id: int) -> Any:
    """The mapping assistant's top suggestions of one offer (the link dialog shows them)."""
    current_amazon.require_access()
    limit = int_in_range(request.args.get("limit", 3)) or 3
    offer_id_ok = int_in_range(offer_id)
    if offer_id_ok is None:
        abort(404)
    try:
        found = suggestions_for_offer(offer_id_ok, limit=max(1, min(limit, 10)))
    except IndexRebuilding as rebuilding:
        # 202: no suggestion from the stale index; ask again when the rebuild is done.
        response = jsonify({"suggestions": [], "rebuilding": rebuild_notice(rebuilding)})
        response.status_code = 202
        response.headers["Cache-Control"] = "no-store"
        return response
    except LookupError:
        abort(404)
    response = jsonify({"suggestions": [displayed(x) for x in found]})
    response.headers["Cache-Control"] = "no-store"
    return response


def rebuild_notice(rebuilding: IndexRebuilding) -> dict[str, Any]:
    """What the link dialog and the Suggestions view show while the product index is
    rebuilt: the message, the job's progress and where to poll it, texts for the script."""
    products = format_count(rebuilding.products)
    if rebuilding.job_id is None:
        message = gettext(
            "The product index must be rebuilt (about %(num)s products), but the job queue is "
            "not reachable. Running “flask xsale-amazon suggest INTEGRATION_ID” on the server "
            "rebuilds it; suggestions appear afterwards.", num=products)
    else:
        message = gettext(
            "The product index is being rebuilt (about %(num)s products); suggestions will "
            "appear when it is done — usually a few minutes.", num=products)
    return {
        "message": message,
        "products": rebuilding.products,
        "job": _rebuild_progress(rebuilding.job) if rebuilding.job else None,
        "status_url": (url_for("xsale_amazon.index_rebuild_status", job_id=rebuilding.job_id)
                       if rebuilding.job_id else None),
        "t_failed": gettext("Rebuilding the product index failed. Reload the page to try "
                            "again."),
    }


def _rebuild_progress(state: dict[str, Any]) -> dict[str, Any]:
    waiting = state["status"] in ("queued", "deferred", "scheduled")
    total = state.get("total")
    return {
        **state,
        "percent": min(100, round(100 * state["done"] / total)) if total else 0,
        "label": (gettext("Waiting for a free worker…") if waiting else gettext(
            "Products checked: %(done)s of %(total)s", done=format_count(state["done"]),
            total=format_count(total) if total else "…")),
    }


@blueprint.get("/suggest-index/rebuild/<job_id>.json")
def index_rebuild_status(job_id: str) -> Any:
    """Progress of the product index rebuild (the catalogue check job)."""
    current_amazon.require_access()
    state = rebuild_state(job_id[:100])
    if state is None:
        abort(404)
    response = jsonify(_rebuild_progress(state))
    response.headers["Cache-Control"] = "no-store"
    return response
