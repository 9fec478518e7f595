"""The *Suggestions* view: link unlinked offers to their suggested products from the keyboard.

One offer at a time beside its ranked suggestions (reasons highlighted); accept, next/previous
suggestion, "no match", skip, reject. Decisions are JSON POSTs, so the operator never waits for
a page load. *Accept all high-confidence (N)* shows the list first and links only what was
shown. Suggestions that are missing or stale are computed inline for a few hundred offers and by
an RQ job with progress beyond that.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, jsonify, redirect, request
from flask_admin import BaseView, expose

from ..babel import gettext as _
from ..babel import ngettext
from ..models import int_in_range
from ..proxies import current_amazon
from ..suggest.jobs import enqueue, job_state
from ..suggest.service import (
    IndexRebuilding,
    accept,
    accept_high,
    compute_for_integration,
    displayed,
    high_confidence,
    queue_summary,
    reject,
    review_queue,
    set_no_match,
    suggestions_for_offer,
)
from .api import rebuild_notice
from .base import PluginForm, flash_form_expired
from .shared import integration_options, requested_integration

#: Stale offers computed while the page loads; more go to an RQ job with progress.
INLINE_COMPUTE_LIMIT = 300
QUEUE_PAGE = 50
PREVIEW_LIMIT = 5000


def _json_error(message: str, status: int = 400) -> Any:
    response = jsonify({"error": message})
    response.status_code = status
    return response


class SuggestionsView(BaseView):
    def is_accessible(self) -> bool:
        return current_amazon.is_allowed()

    def inaccessible_callback(self, name: str, **kwargs: Any) -> Any:
        abort(403)

    def _integration_id(self) -> int | None:
        return requested_integration(default_first=True)

    def _csrf_ok(self) -> bool:
        return PluginForm(request.form).validate()

    @expose("/")
    def index(self) -> Any:
        integration_id = self._integration_id()
        options = integration_options()
        if integration_id is None:
            return self.render("xsale_amazon/admin/suggestions.html", integrations=options,
                               integration_id=None, summary=None, queue=[], job=None,
                               csrf_form=PluginForm())
        try:
            return self._render_queue(integration_id, options)
        except IndexRebuilding as rebuilding:
            # Nothing from the stale index: the message and the rebuild's progress instead.
            return self.render(
                "xsale_amazon/admin/suggestions.html", integrations=options,
                integration_id=integration_id, summary=None, queue=[], job=None,
                rebuild=rebuild_notice(rebuilding), csrf_form=PluginForm(),
            )

    def _render_queue(self, integration_id: int, options: Any) -> Any:
        summary = queue_summary(integration_id)
        job_id = request.args.get("job")
        job = job_state(job_id) if job_id else None
        if job is None and 0 < summary.stale <= INLINE_COMPUTE_LIMIT:
            compute_for_integration(integration_id)
            summary = queue_summary(integration_id)
        elif job is None and summary.stale:
            try:
                job_id = enqueue(integration_id)
                job = job_state(job_id)
            except Exception:  # Redis down: say so, show what is stored
                flash(_("Suggestions cannot be computed now: the job queue is not reachable. "
                        "Showing the suggestions computed before."), "error")
        queue = review_queue(integration_id, limit=QUEUE_PAGE, version=summary.catalog_version)
        return self.render(
            "xsale_amazon/admin/suggestions.html", integrations=options,
            integration_id=integration_id, summary=summary, queue=queue, job=job,
            job_id=job_id, rebuild=None, csrf_form=PluginForm(),
        )

    @expose("/queue.json")
    def queue_json(self) -> Any:
        integration_id = self._integration_id()
        if integration_id is None:
            return jsonify({"items": []})
        offset = int_in_range(request.args.get("offset", 0)) or 0
        try:
            items = review_queue(integration_id, offset=max(offset, 0), limit=QUEUE_PAGE)
        except IndexRebuilding as rebuilding:
            return jsonify({"items": [], "rebuilding": rebuild_notice(rebuilding)})
        return jsonify({"items": items})

    @expose("/job/<job_id>.json")
    def job_json(self, job_id: str) -> Any:
        state = job_state(job_id[:100])
        if state is None:
            abort(404)
        response = jsonify(state)
        response.headers["Cache-Control"] = "no-store"
        return response

    @expose("/decide/", methods=("POST",))
    def decide(self) -> Any:
        if not self._csrf_ok():
            return _json_error(_("The form expired; reload the page and try again."), 400)
        action = request.form.get("action")
        offer_id = int_in_range(request.form.get("offer_id"))
        product_key = (request.form.get("product_key") or "")[:64]
        if offer_id is None or current_amazon.db.session.get(
                current_amazon.models.AmazonOffer, offer_id) is None:
            return _json_error(_("This offer no longer exists."), 404)
        user = current_amazon.current_user_name()
        if action == "accept":
            try:
                accept(offer_id, product_key, user=user)
            except (LookupError, ValueError):
                return _json_error(_("The selected product does not exist."), 404)
            return jsonify({"ok": True, "message": _("Linked.")})
        if action == "reject":
            if not product_key:
                return _json_error(_("No suggestion selected."))
            reject(offer_id, product_key, user=user)
            try:
                fresh = suggestions_for_offer(offer_id, limit=5)
            except IndexRebuilding as rebuilding:
                return jsonify({"ok": True, "suggestions": [],
                                "rebuilding": rebuild_notice(rebuilding)})
            return jsonify({"ok": True, "suggestions": [displayed(x) for x in fresh]})
        if action in ("no_match", "undo_no_match"):
            set_no_match(offer_id, action == "no_match")
            return jsonify({"ok": True})
        return _json_error(_("Unknown action."))

    @expose("/accept-high/", methods=("GET", "POST"))
    def accept_high_view(self) -> Any:
        integration_id = self._integration_id()
        if integration_id is None:
            return redirect(self.get_url(".index"))
        try:
            return self._accept_high(integration_id)
        except IndexRebuilding:  # the view says so and follows the rebuild
            return redirect(self.get_url(".index", integration=integration_id))

    def _accept_high(self, integration_id: int) -> Any:
        if request.method == "POST":
            if not self._csrf_ok():
                flash_form_expired()
                return redirect(self.get_url(".accept_high_view", integration=integration_id))
            ids = [v for v in (int_in_range(x) for x in request.form.getlist("offer_id"))
                   if v is not None]
            if not ids:
                flash(_("Tick at least one offer in the list first."), "warning")
                return redirect(self.get_url(".accept_high_view", integration=integration_id))
            linked = accept_high(integration_id, user=current_amazon.current_user_name(),
                                 offer_ids=ids)
            flash(ngettext("Linked %(num)s offer to its suggested product.",
                           "Linked %(num)s offers to their suggested products.", linked),
                  "success")
            return redirect(self.get_url(".index", integration=integration_id))
        rows = high_confidence(integration_id, limit=PREVIEW_LIMIT)
        total = len(high_confidence(integration_id)) if len(rows) >= PREVIEW_LIMIT else len(rows)
        preview = [{"offer_id": r.id, "seller_sku": r.seller_sku, "name": r.name,
                    "best": displayed(r.suggestions[0])} for r in rows if r.suggestions]
        return self.render("xsale_amazon/admin/suggestions_accept_high.html",
                           integration_id=integration_id, preview=preview, total=total,
                           csrf_form=PluginForm(), integrations=integration_options())
