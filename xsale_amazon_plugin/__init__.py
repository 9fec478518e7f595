"""xsale_amazon_plugin: import a seller's Amazon offers into a Flask-Admin back office."""

from __future__ import annotations

from .extension import XsaleAmazon
from .models import make_models

__version__ = "0.1.0"
__all__ = ["XsaleAmazon", "make_models", "__version__"]
