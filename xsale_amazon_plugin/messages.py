"""Operator-facing messages for import errors, rendered in the operator's language.

Runs store an error *code* and parameters; the text is produced when it is shown, so the
same run reads in Polish for one operator and in English for another.
"""

from __future__ import annotations

from typing import Any

from .babel import gettext as _
from .charsets import resolve_charset
from .formatting import format_number

ASIN_INSTRUCTION_CODE = "missing_asin_column"


def asin_instruction() -> str:
    return _(
        "In Amazon Seller Central open Reports → Inventory Reports, choose the All Listings "
        "Report, add the columns asin and asin1 to the selected columns, save, and run the "
        "import again."
    )


def invalid_cause_text(cause: str | None) -> str:
    """The likely cause of a mostly invalid report (see :mod:`report_checks`)."""
    return {
        "encoding": _(
            "the file is not in the character encoding Amazon declared (wrong encoding)"
        ),
        "damaged": _(
            "the file is damaged (binary data, missing or extra columns, or a cut-off download)"
        ),
        "values": _("prices or quantities are not in the expected format"),
    }.get(cause or "", _("the file is damaged"))


def charset_note(declared: str | None, used: str | None) -> str | None:
    """"declared UTF-8, decoded as cp1252" when the report was read with another charset."""
    if not declared or not used or resolve_charset(declared) in (used, None):
        return None
    return _("declared %(declared)s, decoded as %(used)s", declared=declared, used=used)


def _discard_reason(reason: str | None, user: str | None) -> str:
    if reason == "superseded":
        return _("a newer import of this integration replaced it")
    if reason == "expired":
        return _("nobody confirmed it in time")
    return _("discarded by %(user)s", user=user or "?")


def _count(value: Any) -> str:
    """A count from stored error parameters, locale-formatted ("12,514" / "12 514")."""
    return format_number(value) if isinstance(value, int) else str(value if value is not None
                                                                    else "?")


def _percent(value: Any) -> str:
    """A share in percent from stored error parameters, locale-formatted ("83.6" / "83,6")."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value if value is not None else "?")
    return format_number(int(value) if float(value).is_integer() else round(float(value), 1))


def error_text(code: str | None, params: dict[str, Any] | None = None) -> str:
    p = dict(params or {})
    detail = str(p.get("detail") or "")
    if code == "removal_held":
        return _(
            "This report would remove %(removed)s of the integration's %(live)s offers "
            "(%(share)s %%; the limit is %(limit)s %%). Nothing has been changed yet: confirm "
            "to apply exactly this report, or discard it.",
            removed=_count(p.get("removed")), live=_count(p.get("live")),
            share=_percent(p.get("share")), limit=_percent(p.get("limit")),
        )
    if code == "removal_discarded":
        return _(
            "The report was not applied (%(reason)s); it would have removed %(removed)s of "
            "%(live)s offers. No offer was changed.",
            reason=_discard_reason(p.get("reason"), p.get("user")),
            removed=_count(p.get("removed")), live=_count(p.get("live")),
        )
    if code in ("too_many_invalid", "no_valid_lines"):
        values = dict(invalid=_count(p.get("invalid")), read=_count(p.get("read")),
                      limit=_percent(p.get("limit")), lines=p.get("lines", "?"),
                      cause=invalid_cause_text(p.get("cause")))
        if code == "no_valid_lines":
            return _(
                "None of the %(read)s lines of the report is valid, so nothing was changed. "
                "First invalid lines: %(lines)s. Likely cause: %(cause)s.", **values
            )
        return _(
            "%(invalid)s of the %(read)s lines of the report are invalid (more than "
            "%(limit)s %%), so nothing was changed. First invalid lines: %(lines)s. Likely "
            "cause: %(cause)s.", **values
        )
    if code == ASIN_INSTRUCTION_CODE:
        return _(
            "Amazon's All Listings Report for this marketplace has no ASIN column, so the "
            "offers cannot be linked to the Amazon catalogue. Nothing was changed."
        ) + " " + asin_instruction()
    texts = {
        "unknown_header": _(
            "The report's header was not recognised, so nothing was imported. Header: %(detail)s",
            detail=detail,
        ),
        "empty_report": _("Amazon returned an empty report file. Nothing was changed."),
        "truncated": _(
            "The downloaded report is incomplete (%(detail)s). Nothing was changed; start the "
            "import again.",
            detail=detail,
        ),
        "staging_lost": _(
            "The report rows saved for this import were lost (the database restarted?). "
            "Nothing was changed; start the import again."
        ),
        "undecodable": _(
            "The report could not be decoded (%(detail)s). Nothing was changed.", detail=detail
        ),
        "missing_credentials": _(
            "The integration has no complete LWA credentials. Fill in the client ID, client "
            "secret and refresh token in the Connection tab."
        ),
        "inactive": _("The integration is inactive. Activate it before importing."),
        "amazon_auth": _(
            "Amazon rejected the LWA credentials (client ID, client secret or refresh token). "
            "Check them in the integration's Connection tab. Amazon said: %(detail)s",
            detail=detail,
        ),
        "amazon_forbidden": _(
            "Amazon refused access to the Reports API: the SP-API application lacks the role "
            "needed for inventory reports, or the seller revoked the authorisation. Grant the "
            "role in the Developer Console or authorise the application again. Amazon said: "
            "%(detail)s",
            detail=detail,
        ),
        "amazon_throttled": _(
            "Amazon kept throttling the requests (QuotaExceeded). Try again later. Details: "
            "%(detail)s",
            detail=detail,
        ),
        "amazon_unavailable": _(
            "Amazon did not answer correctly (server or network error). Try again later. "
            "Details: %(detail)s",
            detail=detail,
        ),
        "amazon_bad_request": _("Amazon rejected the request: %(detail)s", detail=detail),
        "report_fatal": _(
            "Amazon could not generate the report (status FATAL). Amazon's explanation: "
            "%(detail)s",
            detail=detail or "-",
        ),
        "report_cancelled": _(
            "Amazon cancelled the report because it has no data for this marketplace and "
            "account: there are no listings to import. No offer was changed."
        ),
        "report_timeout": _(
            "Amazon did not finish the report within %(hours)s hours. No offer was changed; "
            "try again later.",
            hours=p.get("hours", "?"),
        ),
        "download_failed": _(
            "Downloading the report from Amazon failed: %(detail)s. No offer was changed.",
            detail=detail,
        ),
        "url_not_allowed": _(
            "Amazon's answer pointed to a download address outside Amazon's document hosts "
            "(%(detail)s); it was not contacted. No offer was changed.",
            detail=detail,
        ),
        "worker_died": _(
            "The worker running this import stopped before it finished (killed, restarted or "
            "lost). Nothing from this run was applied; start the import again."
        ),
        "worker_missing": _(
            "No worker picked up this import in time. Make sure 'flask xsale-amazon worker' is "
            "running, then start the import again."
        ),
        "queue_unavailable": _(
            "The job queue (Redis) is not reachable, so the import could not be started: "
            "%(detail)s",
            detail=detail,
        ),
        "database": _(
            "The database connection failed during the import: %(detail)s. Nothing from this "
            "run was applied; start the import again.",
            detail=detail,
        ),
        "internal": _(
            "Unexpected error: %(detail)s. Nothing from this run was applied.", detail=detail
        ),
    }
    return texts.get(code or "", detail or (code or ""))


def status_badge_class(status: str) -> str:
    """The Bootstrap badge colour of a run status."""
    return {"succeeded": "success", "failed": "danger", "no_data": "secondary", "held": "warning",
            "discarded": "secondary"}.get(status, "info")


def status_label(status: str) -> str:
    """The operator-facing name of a run status, in the current locale."""
    return {
        "queued": _("Queued"),
        "requesting": _("Requesting report"),
        "waiting": _("Waiting for Amazon"),
        "processing": _("Importing"),
        "succeeded": _("Succeeded"),
        "no_data": _("No data"),
        "failed": _("Failed"),
        "held": _("Awaiting confirmation"),
        "discarded": _("Discarded"),
    }.get(status, status)


def stage_label(stage: str) -> str:
    """The operator-facing name of a run stage, in the current locale."""
    return {
        "queued": _("Queued"),
        "requesting_report": _("Requesting report"),
        "waiting_for_amazon": _("Waiting for Amazon"),
        "downloading": _("Downloading"),
        "parsing": _("Parsing"),
        "saving": _("Saving"),
        "awaiting_confirmation": _("Awaiting confirmation"),
        "done": _("Done"),
    }.get(stage, stage)
