"""JSON endpoints of the plugin's blueprint (run progress, product search)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, jsonify, request

from .babel import gettext
from .lifecycle import recover_stale_runs
from .messages import error_text, stage_label, status_badge_class, status_label
from .models import Status, as_utc, int_in_range, utcnow
from .proxies import current_amazon

blueprint = Blueprint(
    "xsale_amazon",
    __name__,
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


def run_progress(run: Any) -> dict[str, Any]:
    """The progress document of a run, as the run page's script consumes it."""
    now = utcnow()
    started = as_utc(run.started_at or run.created_at)
    end = as_utc(run.finished_at) or now
    elapsed = max((end - started).total_seconds(), 0.0)
    eta = None
    if run.is_active and run.rows_total and run.rows_done and run.stage == "parsing":
        rate = run.rows_done / max(elapsed, 0.001)
        eta = round((run.rows_total - run.rows_done) / rate) if rate else None
    percent = None
    if run.rows_total:
        percent = min(100, round(100 * (run.rows_done or 0) / run.rows_total))
    if run.status == Status.SUCCEEDED:
        percent = 100
    return {
        "id": run.id,
        "integration_id": run.integration_id,
        "status": run.status,
        "status_label": status_label(run.status),
        "stage": run.stage,
        "stage_label": stage_label(run.stage),
        "active": run.is_active,
        "rows_done": run.rows_done,
        "rows_total": run.rows_total,
        "percent": percent,
        "elapsed_seconds": round(elapsed),
        "eta_seconds": eta,
        "next_poll_in": (
            max(round((as_utc(run.next_poll_at) - now).total_seconds()), 0)
            if run.is_active and run.next_poll_at and run.status == Status.WAITING
            else None
        ),
        "polls": run.poll_count,
        "counts": run.counts,
        "error": error_text(run.error_code, run.error_params) if run.error_code else None,
        "error_code": run.error_code,
    }


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
    if run.is_active and recover_stale_runs(run.integration_id):
        session.refresh(run)
    response = jsonify(run_progress(run))
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/products/search")
def product_search():
    """Select2-style product search over the host's SKU, EAN and name attributes."""
    current_amazon.require_access()
    # NUL: PostgreSQL text cannot hold it (the query would fail with a 500).
    term = (request.args.get("q") or "").replace("\x00", "").strip()[:100]
    try:
        limit = max(1, min(int(request.args.get("limit", 20)), 50))
    except ValueError:
        limit = 20
    m = current_amazon.models
    pk = m.product_pk
    columns = [c for c in (current_amazon.product_attr(k) for k in ("sku", "ean", "name"))
               if c is not None]
    query = sa.select(m.product_model)
    if term:
        matches = [sa.cast(c, sa.String).icontains(term, autoescape=True) for c in columns]
        query = query.where(sa.or_(*matches))
    query = query.order_by(*(columns[:1] or [pk])).limit(limit)
    products = current_amazon.db.session.execute(query).scalars().all()
    return jsonify({"results": [
        {"id": str(getattr(p, pk.key)), "text": product_label(p)} for p in products
    ]})


def product_label(product: Any) -> str:
    settings = current_amazon.settings
    parts = []
    for attr in (settings.product_sku_attr, settings.product_ean_attr, settings.product_name_attr):
        value = getattr(product, attr, None) if attr else None
        if value:
            parts.append(str(value))
    return " · ".join(parts) or str(product)


