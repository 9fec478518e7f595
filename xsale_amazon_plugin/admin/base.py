"""Base of the plugin's Flask-Admin views: host access check, CSRF, hostile query strings."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import abort, current_app, flash, request
from flask_admin import expose
from flask_admin.actions import action
from flask_admin.babel import lazy_gettext as admin_lazy_gettext
from flask_admin.contrib.sqla import ModelView
from flask_admin.form import BaseForm, SecureForm
from flask_admin.model.filters import BaseIntFilter, BaseIntListFilter

from ..babel import gettext as _
from ..linking.offer_scope import clean_search
from ..models import int_in_range
from ..proxies import current_amazon

#: Query-string limits of the list views (search limits: see offer_scope.clean_search). A page
#: number beyond what an OFFSET can hold fails on the database, so hostile or mistyped URLs
#: answered 500.
MAX_PAGE = 1_000_000


def flash_form_expired() -> None:
    flash(_("The form expired; reload the page and try again."), "error")


class PluginForm(BaseForm):
    """CSRF-protected unless the host runs Flask-WTF's CSRFProtect (which then protects it).

    Both at once would put two ``csrf_token`` fields in every form and reject every POST.
    """

    class Meta(SecureForm.Meta):
        @property
        def csrf(self) -> bool:
            return "csrf" not in current_app.extensions


class PluginModelView(ModelView):
    """Base of the plugin's views: host access check, plugin CSRF, hostile ids and query strings."""
    form_base_class = PluginForm
    #: Flask-Admin's list plus the plugin's alert banner (views with their own list override it).
    list_template = "xsale_amazon/admin/list.html"

    def is_accessible(self) -> bool:
        return current_amazon.is_allowed()

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

    def csrf_valid(self) -> bool:
        """Whether the POSTed form's CSRF token is valid; flashes "form expired" if not."""
        if self.csrf_form().validate():
            return True
        flash_form_expired()
        return False

    def validate_form(self, form: Any) -> bool:
        valid = super().validate_form(form)
        if not valid and "csrf_token" in getattr(form, "errors", {}):
            # Flask-Admin renders only "Failed to create record." for an error of the hidden
            # token field; say what happened, like the plugin's own forms do.
            flash_form_expired()
        return valid

    @action("delete", admin_lazy_gettext("Delete"),
            admin_lazy_gettext("Are you sure you want to delete selected records?"))
    def action_delete(self, ids: Any) -> Any:
        # Flask-Admin filters ``pk IN (<the form's strings>)``: psycopg 3 binds them as
        # VARCHAR and PostgreSQL refuses ``integer = character varying``, so the bulk delete
        # always failed there. Pass the ids as ints (dropping ones that cannot be ids).
        pk = sa.inspect(self.model).primary_key[0]
        if isinstance(pk.type, sa.Integer):
            ids = [n for n in (int_in_range(i, pk) for i in ids) if n is not None]
        return super().action_delete(ids)

    # -- hostile query strings and ids ----------------------------------------------------------
    def get_one(self, id: Any) -> Any:
        """The record of ``id``, or None for an id that cannot be one (no database error)."""
        pk = sa.inspect(self.model).primary_key[0]
        if isinstance(pk.type, sa.Integer) and int_in_range(id, pk) is None:
            return None
        return super().get_one(id)

    def _get_list_filter_args(self) -> Any:
        filters = super()._get_list_filter_args()
        if not filters:
            return filters
        kept = []
        for item in filters:
            idx, _name, value = item
            flt = self._filters[idx] if self._filters else None
            if "\x00" in value:  # PostgreSQL text cannot hold NUL: the query would fail
                flash(self.get_invalid_value_msg(value.replace("\x00", ""), flt), "error")
                continue
            if isinstance(flt, (BaseIntFilter, BaseIntListFilter)):
                column = getattr(flt, "column", None)
                values = value.split(",") if isinstance(flt, BaseIntListFilter) else [value]
                if any(int_in_range(v, column) is None for v in values if v.strip()):
                    flash(self.get_invalid_value_msg(value, flt), "error")
                    continue
            kept.append(item)
        return kept

    def _get_list_extra_args(self) -> Any:
        args = super()._get_list_extra_args()
        args.page = min(max(args.page or 0, 0), MAX_PAGE)
        if args.search:
            # Longer searches are cut to their first terms (no real search needs more).
            args.search = clean_search(args.search)
        return args
