"""The *Mapping CSV* view: export offers with their links, import a mapping file after a
dry-run preview (will link N, conflicts M, unknown K, per-line errors)."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, request, stream_with_context
from flask_admin import BaseView, expose

from ..babel import gettext as _
from ..babel import ngettext
from ..linking.mapping_csv import (
    KEYS,
    MAX_ERRORS_KEPT,
    apply_plan,
    available_keys,
    default_key,
    export_csv,
    key_label,
    plan_import,
)
from ..proxies import current_amazon
from .base import PluginForm, flash_form_expired
from .shared import integration_options, requested_integration

#: Largest mapping file accepted, in bytes.
MAX_UPLOAD = 10 * 1024 * 1024


class MappingCsvView(BaseView):
    def is_accessible(self) -> bool:
        return current_amazon.is_allowed()

    def inaccessible_callback(self, name: str, **kwargs: Any) -> Any:
        abort(403)

    def _page(self, **context: Any) -> Any:
        plan = context.get("plan")
        if plan is not None and not plan.file_error:
            context["apply_label"] = ngettext("Link %(num)s offer", "Link %(num)s offers",
                                              plan.will_link)
            context["skipped_label"] = ngettext(
                "%(num)s line without a product, skipped.",
                "%(num)s lines without a product, skipped.", plan.skipped)
        keys = available_keys()
        return self.render("xsale_amazon/admin/mapping_csv.html",
                           integrations=integration_options(),
                           keys=[(k, key_label(k)) for k in keys], default_key=default_key(),
                           csrf_form=PluginForm(), max_errors=MAX_ERRORS_KEPT,
                           **context)

    @expose("/")
    def index(self) -> Any:
        return self._page(plan=None, integration_id=requested_integration())

    @expose("/export.csv")
    def export(self) -> Any:
        integration_id = requested_integration()
        name = f"amazon-offers-{integration_id or 'all'}.csv"
        response = Response(stream_with_context(export_csv(integration_id)),
                            mimetype="text/csv; charset=utf-8")
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    def _form_plan(self, text: str) -> Any:
        by = request.form.get("by", "")
        if by not in KEYS:
            by = default_key()
        return plan_import(text, by=by, integration_id=requested_integration(),
                           overwrite=request.form.get("overwrite") == "1")

    @expose("/preview/", methods=("POST",))
    def preview(self) -> Any:
        if not PluginForm(request.form).validate():
            flash_form_expired()
            return redirect(self.get_url(".index"))
        upload = request.files.get("file")
        if (upload is None or not upload.filename) and "text" in request.form:
            # The preview page asks again with other options (replace existing links).
            text = request.form["text"][:MAX_UPLOAD]
            return self._page(plan=self._form_plan(text), text=text,
                              integration_id=requested_integration())
        if upload is None or not upload.filename:
            flash(_("Choose a CSV file to import."), "error")
            return redirect(self.get_url(".index"))
        data = upload.read(MAX_UPLOAD + 1)
        if not data:
            flash(_("The file is empty."), "error")
            return redirect(self.get_url(".index"))
        if len(data) > MAX_UPLOAD:
            flash(_("The file is larger than 10 MB; split it."), "error")
            return redirect(self.get_url(".index"))
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            flash(_("The file is not UTF-8 text. In your spreadsheet save it as “CSV UTF-8”."),
                  "error")
            return redirect(self.get_url(".index"))
        plan = self._form_plan(text)
        return self._page(plan=plan, text=text, integration_id=requested_integration())

    @expose("/apply/", methods=("POST",))
    def apply(self) -> Any:
        if not PluginForm(request.form).validate():
            flash_form_expired()
            return redirect(self.get_url(".index"))
        text = request.form.get("text", "")[:MAX_UPLOAD]
        plan = self._form_plan(text)
        if plan.file_error or plan.digest != request.form.get("digest"):
            flash(_("Offers or products changed since the preview. Check the new preview and "
                    "apply again."), "warning")
            return self._page(plan=plan, text=text, integration_id=requested_integration())
        linked = apply_plan(plan, user=current_amazon.current_user_name())
        flash(ngettext("Linked %(num)s offer from the file.",
                       "Linked %(num)s offers from the file.", linked), "success")
        return redirect(self.get_url(".index", integration=requested_integration() or ""))
