"""JSON endpoints of the plugin's blueprint (run progress, product search)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import abort, jsonify, request

from .extension import blueprint, get_state
from .messages import error_text, stage_label, status_label
from .models import Status, as_utc, utcnow


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
    state = get_state()
    state.require_access()
    # The URL converter accepts any digits; beyond the integer column's range the database
    # raises (PostgreSQL: out of range, SQLite: OverflowError) - no such run either way.
    run = state.db.session.get(state.models.ImportRun, run_id) if run_id < 2**31 else None
    if run is None:
        abort(404)
    if run.is_active:
        from .imports import recover_stale_runs

        if recover_stale_runs(run.integration_id):
            state.db.session.refresh(run)
    response = jsonify(run_progress(run))
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/products/search")
def product_search():
    """Select2-style product search over the host's SKU, EAN and name attributes."""
    state = get_state()
    state.require_access()
    # NUL: PostgreSQL text cannot hold it (the query would fail with a 500).
    term = (request.args.get("q") or "").replace("\x00", "").strip()[:100]
    try:
        limit = max(1, min(int(request.args.get("limit", 20)), 50))
    except ValueError:
        limit = 20
    m = state.models
    pk = m.product_pk
    columns = [c for c in (state.product_attr(k) for k in ("sku", "ean", "name")) if c is not None]
    query = sa.select(m.product_model)
    if term:
        escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = f"%{escaped}%"
        matches = [sa.cast(c, sa.String).ilike(like, escape="\\") for c in columns]
        query = query.where(sa.or_(*matches))
    query = query.order_by(*(columns[:1] or [pk])).limit(limit)
    products = state.db.session.execute(query).scalars().all()
    return jsonify({"results": [
        {"id": str(getattr(p, pk.key)), "text": product_label(p)} for p in products
    ]})


def product_label(product: Any) -> str:
    state = get_state()
    parts = []
    for key in ("sku", "ean", "name"):
        attr = state.cfg(f"PRODUCT_{key.upper()}_ATTR")
        value = getattr(product, attr, None) if attr else None
        if value:
            parts.append(str(value))
    return " · ".join(parts) or str(product)


