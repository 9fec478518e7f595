"""Charset names Amazon declares (Java names such as ``Windows-31J``, ``Cp1252``, ``utf8``)
mapped to Python codecs. A leaf module: the Amazon client and the report parser both use it.
"""

from __future__ import annotations

import codecs

_CHARSET_ALIASES = {
    "windows-31j": "cp932",
    "shift-jis": "cp932",
    "shiftjis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms932": "cp932",
    "ms-kanji": "cp932",
    "csshiftjis": "cp932",
    "cp932": "cp932",
    "windows-932": "cp932",
    "cp1252": "cp1252",
    "windows-1252": "cp1252",
    "x-cp1252": "cp1252",
    "utf8": "utf-8",
    "utf-8": "utf-8",
    "utf-8-sig": "utf-8",
    "iso-8859-1": "latin-1",
    "iso8859-1": "latin-1",
    "latin1": "latin-1",
    "latin-1": "latin-1",
    "l1": "latin-1",
}
# Stateful codecs can hide "\t"/"\n" bytes inside escape sequences; line splitting on bytes
# would corrupt them.
_STATEFUL_CODECS = ("utf-7", "utf_7", "iso2022", "hz")


def resolve_charset(declared: str | None) -> str | None:
    """Map a Java/Amazon charset name to a Python codec; ``None`` when unknown or unusable."""
    if not declared:
        return None
    name = declared.strip().strip("\"'").strip().lower().replace("_", "-")
    if not name:
        return None
    if name in _CHARSET_ALIASES:
        return _CHARSET_ALIASES[name]
    try:
        codec = codecs.lookup(name).name
        sample = "a\tb\r\n"
        if sample.encode(codec) != sample.encode("ascii") or b"a\tb\r\n".decode(codec) != sample:
            return None
    except (LookupError, UnicodeError, TypeError, AttributeError):
        return None
    if codec.startswith(_STATEFUL_CODECS):
        return None
    return codec
