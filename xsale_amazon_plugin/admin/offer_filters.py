"""Flask-Admin filters of the offers workspace, each one field of an :class:`OfferScope`.

They filter the offer table itself (see :mod:`xsale_amazon_plugin.linking.offer_scope`): the former
``FilterEqual`` on the integration's columns made Flask-Admin join the integration table a
second time, and every "Marketplace" / "Account type" filter answered 500.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import has_app_context
from flask_admin.babel import lazy_gettext as admin_lazy_gettext
from flask_admin.contrib.sqla.filters import BaseSQLAFilter

from ..babel import lazy_gettext as _l
from ..formatting import marketplace_label, offer_status_options
from ..linking.offer_scope import AUTOLINK_KEYS, filter_criterion
from ..proxies import current_amazon
from .shared import integration_options

_Options = list[tuple[str, Any]] | Callable[[], list[tuple[str, Any]]]


class ScopeFilter(BaseSQLAFilter):
    """Equality filter of one scope field; values outside its options select nothing."""

    def __init__(self, column: Any, name: Any, field: str, options: _Options) -> None:
        super().__init__(column, name, options=options)
        self.field = field

    def apply(self, query: Any, value: Any, alias: Any = None) -> Any:
        return query.filter(filter_criterion(self.field, value))

    def operation(self) -> Any:
        return admin_lazy_gettext("equals")


def _marketplace_options() -> list[tuple[str, str]]:
    """The marketplaces of the configured integrations, named in the operator's language."""
    if not has_app_context():
        return []
    state = current_amazon
    integ = state.models.AmazonIntegration
    codes = state.db.session.execute(
        sa.select(integ.marketplace).distinct().order_by(integ.marketplace)
    ).scalars()
    return [(code, marketplace_label(code)) for code in codes]


def offer_filters(model: Any) -> list[ScopeFilter]:
    """The workspace's filters, in the order the "Add filter" menu lists them."""
    return [
        ScopeFilter(model.integration_id, _l("Integration"), "integration", integration_options),
        ScopeFilter(model.integration_id, _l("Marketplace"), "marketplace", _marketplace_options),
        ScopeFilter(model.integration_id, _l("Account type"), "account_type",
                    [("FBA", "FBA"), ("FBM", "FBM")]),
        ScopeFilter(model.status, _l("Status"), "status", offer_status_options),
        ScopeFilter(model.removed_at, _l("Removed"), "removed",
                    [("no", _l("No")), ("yes", _l("Yes"))]),
        ScopeFilter(model.id, _l("Auto-link ambiguous by"), "ambiguous",
                    [(key, key.upper()) for key in AUTOLINK_KEYS]),
    ]
