"""Flask-Admin views of the plugin: Integrations, Offers, Import runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..babel import lazy_gettext as _l
from .integrations import IntegrationView
from .mapping_csv_view import MappingCsvView
from .offers import OfferView
from .runs import ImportRunView
from .schedule import add_alert_badge
from .suggestions_view import SuggestionsView

if TYPE_CHECKING:
    from ..extension import XsaleAmazon

__all__ = ["IntegrationView", "OfferView", "ImportRunView", "SuggestionsView", "MappingCsvView",
           "register_views", "make_views", "add_alert_badge"]


def make_views(extension: XsaleAmazon, category: str | None = None) -> list[Any]:
    """The plugin's view instances, for a host that adds them to its admin itself.

    :param extension: the initialised :class:`~xsale_amazon_plugin.XsaleAmazon` (e.g.
        ``app.extensions["xsale_amazon"]``).
    :param category: the admin menu category; overrides ``XSALE_AMAZON_ADMIN_CATEGORY``.
    :returns: the views, to pass to ``admin.add_view``.

    .. versionadded:: 0.2.0
    """
    m, db, settings = extension.models, extension.db, extension.settings
    category = category if category is not None else settings.admin_category
    offers = OfferView(m.AmazonOffer, db, name=_l("Offers"), category=category,
                       endpoint="xsale_amazon_offer", url="xsale-amazon/offers")
    offers.page_size = settings.page_size
    offers.page_size_options = tuple(sorted({20, 50, 100, 500, settings.page_size}))  # type: ignore[assignment]
    return [
        IntegrationView(m.AmazonIntegration, db, name=_l("Integrations"), category=category,
                        endpoint="xsale_amazon_integration", url="xsale-amazon/integrations"),
        offers,
        ImportRunView(m.ImportRun, db, name=_l("Import runs"), category=category,
                      endpoint="xsale_amazon_run", url="xsale-amazon/runs"),
        SuggestionsView(name=_l("Suggestions"), category=category,
                        endpoint="xsale_amazon_suggestions", url="xsale-amazon/suggestions"),
        MappingCsvView(name=_l("Mapping CSV"), category=category,
                       endpoint="xsale_amazon_mapping_csv", url="xsale-amazon/mapping-csv"),
    ]


def register_views(admin: Any, extension: XsaleAmazon) -> None:
    """Add the views to ``admin`` once (a second app sharing the Admin gets no duplicates)."""
    if getattr(admin, "_xsale_amazon_views", None) is not None:
        return
    views = make_views(extension)
    for view in views:
        admin.add_view(view)
    add_alert_badge(admin, extension.settings.admin_category)
    admin._xsale_amazon_views = views
