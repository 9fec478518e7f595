"""The plugin's own translation domain (``xsale_amazon``), safe without an initialised Babel."""

from __future__ import annotations

from importlib import resources
from typing import Any

from flask import current_app, has_request_context
from flask_babel import Domain

DOMAIN = "xsale_amazon"
TRANSLATIONS_DIR = str(resources.files("xsale_amazon_plugin") / "translations")

_domain = Domain(TRANSLATIONS_DIR, domain=DOMAIN)


def _babel_ready() -> bool:
    # Outside a request (workers, CLI) messages stay in English: a host locale selector
    # usually reads the request and would fail there.
    return has_request_context() and "babel" in current_app.extensions


def gettext(string: str, **variables: Any) -> str:
    if not _babel_ready():
        return string % variables if variables else string
    return _domain.gettext(string, **variables)


def ngettext(singular: str, plural: str, num: int, **variables: Any) -> str:
    if not _babel_ready():
        variables.setdefault("num", num)
        return (singular if num == 1 else plural) % variables
    return _domain.ngettext(singular, plural, num, **variables)


def lazy_gettext(string: str, **variables: Any) -> Any:
    from flask_babel import LazyString

    return LazyString(gettext, string, **variables)


_ = gettext
