"""Checks of a parsed report before anything is applied: a mostly invalid report fails.

A report in the wrong encoding, a damaged or a cut-off file yields mostly invalid lines; its
few valid lines would make the apply soft-remove almost every offer. Such a report is rejected
as a whole, naming the first invalid lines and the likely cause.
"""

from __future__ import annotations

from typing import Any

from .writer import StageCounts

#: How many invalid line numbers the error names.
NAMED_LINES = 5


class ReportRejected(Exception):
    """The report must not be applied; ``code`` and ``params`` make the operator's message."""

    def __init__(self, code: str, params: dict[str, Any]) -> None:
        self.code = code
        self.params = params
        super().__init__(f"{code}: {params}")


def _likely_cause(invalid_lines: list[dict[str, Any]]) -> str:
    """``"encoding"``, ``"damaged"`` or ``"values"`` from the reasons of the invalid lines."""
    reasons = [str(item.get("reason") or "") for item in invalid_lines]
    if any("cannot be decoded" in r for r in reasons):
        return "encoding"
    if all(item.get("column") in ("price", "quantity") for item in invalid_lines):
        return "values"
    return "damaged"


def check_invalid_share(counts: StageCounts, max_share: float) -> None:
    """Raise :class:`ReportRejected` when no line is valid or too many are invalid."""
    if not counts.invalid:
        return
    params = {
        "invalid": counts.invalid,
        "read": counts.read,
        "limit": round(max_share * 100, 1),
        "lines": ", ".join(str(item["line"]) for item in counts.invalid_lines[:NAMED_LINES]),
        "cause": _likely_cause(counts.invalid_lines),
    }
    if counts.invalid >= counts.read:
        raise ReportRejected("no_valid_lines", params)
    if counts.invalid > max_share * counts.read:
        raise ReportRejected("too_many_invalid", params)
