"""Flask-Admin views of the plugin: Integrations, Offers, Import runs."""

from __future__ import annotations

from typing import Any

from .integrations import IntegrationView
from .offers import OfferView
from .runs import ImportRunView

__all__ = ["IntegrationView", "OfferView", "ImportRunView", "register_views", "make_views"]


def make_views(state: Any, category: str | None = None) -> list[Any]:
    """The plugin's view instances, for a host that adds them to its admin itself."""
    from ..babel import lazy_gettext as _l

    m, db = state.models, state.db
    category = category if category is not None else state.cfg("ADMIN_CATEGORY")
    offers = OfferView(m.AmazonOffer, db, name=_l("Offers"), category=category,
                       endpoint="xsale_amazon_offer", url="xsale-amazon/offers")
    page_size = int(state.cfg("PAGE_SIZE"))
    offers.page_size = page_size
    offers.page_size_options = tuple(sorted({20, 50, 100, 500, page_size}))
    return [
        IntegrationView(m.AmazonIntegration, db, name=_l("Integrations"), category=category,
                        endpoint="xsale_amazon_integration", url="xsale-amazon/integrations"),
        offers,
        ImportRunView(m.ImportRun, db, name=_l("Import runs"), category=category,
                      endpoint="xsale_amazon_run", url="xsale-amazon/runs"),
    ]


def register_views(admin: Any, state: Any) -> None:
    """Add the views to ``admin`` once (a second app sharing the Admin gets no duplicates)."""
    registered = getattr(admin, "_xsale_amazon_views", None)
    if registered is not None:
        state.admin_views = registered
        return
    views = make_views(state)
    for view in views:
        admin.add_view(view)
    admin._xsale_amazon_views = {v.endpoint: v for v in views}
    state.admin_views = admin._xsale_amazon_views
