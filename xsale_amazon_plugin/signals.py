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

#: An import run failed (sent right after import_finished). kwargs: ``run`` (ImportRun),
#: ``integration`` (AmazonIntegration), ``error`` (the English error text, as logged).
import_failed = _signals.signal("xsale-amazon-import-failed")

#: An integration has had no successful import for too long (twice its schedule's
#: interval, or XSALE_AMAZON_STALE_AFTER without a schedule). Sent once per stale period,
#: by one worker. kwargs: ``integration``, ``last_success_at`` (aware UTC datetime or None),
#: ``stale_since`` (aware UTC datetime).
integration_stale = _signals.signal("xsale-amazon-integration-stale")

#: A schedule was paused because its scheduled imports kept failing. kwargs:
#: ``integration``, ``reason`` ("failures").
schedule_paused = _signals.signal("xsale-amazon-schedule-paused")
