"""``current_amazon``: the :class:`~xsale_amazon_plugin.XsaleAmazon` bound to the current app.

Like Flask-Security's ``proxies`` module, this is the one way the plugin's modules (and hosts)
reach the app-bound extension, so none of them imports ``extension`` and no import cycle forms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import current_app
from werkzeug.local import LocalProxy

if TYPE_CHECKING:
    from .extension import XsaleAmazon

EXTENSION_KEY = "xsale_amazon"


def _get_extension() -> XsaleAmazon:
    """The extension bound to the current app; RuntimeError telling what to do otherwise."""
    try:
        extension = current_app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            "xsale_amazon_plugin is not initialised on this app: call "
            "XsaleAmazon().init_app(app, db=db, admin=admin, product_model=Product)."
        ) from None
    return cast("XsaleAmazon", extension)


#: The :class:`~xsale_amazon_plugin.XsaleAmazon` of the current app (needs an app context).
current_amazon: XsaleAmazon = cast("XsaleAmazon", LocalProxy(_get_extension))
