"""xsale_amazon_plugin: import a seller's Amazon offers into a Flask-Admin back office.

The public API; hosts import from here, never from the plugin's private modules::

    from xsale_amazon_plugin import XsaleAmazon, current_amazon, start_import, link_offers
"""

from __future__ import annotations

from .admin import make_views
from .extension import XsaleAmazon
from .importing.lifecycle import (
    CancelRefused,
    ImportAlreadyRunning,
    ImportNotPossible,
    ImportRefused,
    cancel_import,
    start_import,
)
from .linking.autolink_job import AutoLinkRequest, AutoLinkUnavailable, start_autolink
from .linking.links import AutoLinkResult, autolink, link_offers, unlink_offers
from .linking.offer_scope import OfferScope
from .models import Models, make_models
from .proxies import current_amazon
from .settings import Settings, SettingsError
from .signals import (
    import_failed,
    import_finished,
    integration_stale,
    offers_linked,
    offers_unlinked,
    schedule_paused,
)
from .worker import make_worker, register_periodic

__version__ = "0.2.0.dev0"
__all__ = [
    "CancelRefused",
    "cancel_import",
    "AutoLinkRequest",
    "AutoLinkResult",
    "AutoLinkUnavailable",
    "ImportAlreadyRunning",
    "ImportNotPossible",
    "ImportRefused",
    "Models",
    "OfferScope",
    "Settings",
    "SettingsError",
    "XsaleAmazon",
    "__version__",
    "autolink",
    "current_amazon",
    "import_failed",
    "import_finished",
    "integration_stale",
    "link_offers",
    "make_models",
    "make_views",
    "make_worker",
    "offers_linked",
    "offers_unlinked",
    "register_periodic",
    "schedule_paused",
    "start_autolink",
    "start_import",
    "unlink_offers",
]
