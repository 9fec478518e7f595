"""Shared base of the plugin's Flask-Admin views: host access check and CSRF handling."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, request
from flask_admin import expose
from flask_admin.contrib.sqla import ModelView
from flask_admin.form import BaseForm, SecureForm

from ..extension import get_state


class PluginForm(BaseForm):
    """CSRF-protected unless the host runs Flask-WTF's CSRFProtect (which then protects it).

    Both at once would put two ``csrf_token`` fields in every form and reject every POST.
    """

    class Meta(SecureForm.Meta):
        @property
        def csrf(self) -> bool:  # type: ignore[override]
            return "csrf" not in current_app.extensions


class PluginModelView(ModelView):
    form_base_class = PluginForm

    def is_accessible(self) -> bool:
        return get_state().is_allowed()

    def inaccessible_callback(self, name: str, **kwargs: Any) -> Any:
        abort(403)

    @expose("/")
    def index_view(self) -> Any:
        if self.column_filters:
            self._refresh_filters_cache()  # filter options list the current integrations
        return super().index_view()

    def csrf_form(self) -> PluginForm:
        """An empty form for custom POST views; validate() checks its CSRF token."""
        return PluginForm(request.form if request.method == "POST" else None)
