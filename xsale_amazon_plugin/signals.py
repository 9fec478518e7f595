"""Blinker signals a host can subscribe to, e.g. to start stock/price synchronisation.

The sender is always the Flask app; keyword arguments are listed per signal.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: An import run ended. kwargs: ``run`` (ImportRun), ``integration`` (AmazonIntegration),
#: ``counts`` (dict: read, created, updated, unchanged, removed, restored, skipped, invalid).
import_finished = _signals.signal("xsale-amazon-import-finished")

#: Offers were linked to a product. kwargs: ``offer_ids`` (list[int]), ``product_id``
#: (the product's primary key, or None when several products were linked at once by
#: auto-link), ``method`` ("manual", "sku", "ean", "asin", "suggestion").
offers_linked = _signals.signal("xsale-amazon-offers-linked")

#: Links were removed. kwargs: ``offer_ids`` (list[int]).
offers_unlinked = _signals.signal("xsale-amazon-offers-unlinked")
