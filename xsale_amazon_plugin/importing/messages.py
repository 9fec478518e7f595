"""Operator-facing messages for import errors, rendered in the operator's language.

Runs store an error *code* and parameters; the text is produced when it is shown, so the
same run reads in Polish for one operator and in English for another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from babel import Locale
from flask import current_app, has_request_context
from flask_babel import get_locale

from ..amazon.charsets import resolve_charset
from ..babel import gettext as _
from ..formatting import format_number

ASIN_INSTRUCTION_CODE = "missing_asin_column"
#: Errors whose ``amazon`` parameter holds Amazon's own (English) words; pages show them
#: apart, labelled as Amazon's message, instead of inside the translated explanation.
AMAZON_MESSAGE_CODES = frozenset({
    "amazon_auth", "amazon_forbidden", "amazon_throttled", "amazon_unavailable",
    "amazon_bad_request", "report_fatal", "download_failed",
})
#: Errors that running the same import again cannot fix: the operator must act first.
REMEDY_FIRST_CODES = frozenset({
    ASIN_INSTRUCTION_CODE, "amazon_auth", "amazon_forbidden", "missing_credentials", "inactive",
})


def asin_instruction() -> str:
    return _(
        "In Amazon Seller Central open Reports → Inventory Reports, choose the All Listings "
        "Report, add the columns asin and asin1 to the selected columns, save, and run the "
        "import again."
    )


def _invalid_cause_text(cause: str | None) -> str:
    """The likely cause of a mostly invalid report (see :mod:`.report_checks`)."""
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


def error_text(code: str | None, params: dict[str, Any] | None = None, *,
               with_amazon_message: bool = True) -> str:
    """The operator-facing text of an error ``code``.

    With ``with_amazon_message=False`` errors in :data:`AMAZON_MESSAGE_CODES` leave out what
    Amazon said (see :func:`amazon_message`), so a page can show it separately. An unknown
    code reads as its detail, or as the code itself.
    """
    p = dict(params or {})
    if code in AMAZON_MESSAGE_CODES and not with_amazon_message:
        return _SHORT_ERROR_TEXTS[code]()
    text = _ERROR_TEXTS.get(code or "")
    if text is None:
        return _detail(p) or (code or "")
    return text(p)


def _detail(p: dict[str, Any]) -> str:
    return str(p.get("detail") or "")


def _invalid_lines_values(p: dict[str, Any]) -> dict[str, Any]:
    return dict(invalid=_count(p.get("invalid")), read=_count(p.get("read")),
                limit=_percent(p.get("limit")), lines=p.get("lines", "?"),
                cause=_invalid_cause_text(p.get("cause")))


#: Error code -> its text, built from the run's parameters when shown: one string is
#: translated per call, in the language of the request.
_ERROR_TEXTS: dict[str, Callable[[dict[str, Any]], str]] = {
    "removal_held": lambda p: _(
        "This report would remove %(removed)s of the integration's %(live)s offers "
        "(%(share)s %%; the limit is %(limit)s %%). Nothing has been changed yet: confirm "
        "to apply exactly this report, or discard it.",
        removed=_count(p.get("removed")), live=_count(p.get("live")),
        share=_percent(p.get("share")), limit=_percent(p.get("limit")),
    ),
    "removal_discarded": lambda p: _(
        "The report was not applied (%(reason)s); it would have removed %(removed)s of "
        "%(live)s offers. No offer was changed.",
        reason=_discard_reason(p.get("reason"), p.get("user")),
        removed=_count(p.get("removed")), live=_count(p.get("live")),
    ),
    "no_valid_lines": lambda p: _(
        "None of the %(read)s lines of the report is valid, so nothing was changed. "
        "First invalid lines: %(lines)s. Likely cause: %(cause)s.", **_invalid_lines_values(p)
    ),
    "too_many_invalid": lambda p: _(
        "%(invalid)s of the %(read)s lines of the report are invalid (more than "
        "%(limit)s %%), so nothing was changed. First invalid lines: %(lines)s. Likely "
        "cause: %(cause)s.", **_invalid_lines_values(p)
    ),
    ASIN_INSTRUCTION_CODE: lambda p: _(
        "Amazon's All Listings Report for this marketplace has no ASIN column, so the "
        "offers cannot be linked to the Amazon catalogue. Nothing was changed."
    ) + " " + asin_instruction(),
    "unknown_header": lambda p: _(
        "The report's header was not recognised, so nothing was imported. Header: %(detail)s",
        detail=_detail(p),
    ),
    "empty_report": lambda p: _("Amazon returned an empty report file. Nothing was changed."),
    "truncated": lambda p: _(
        "The downloaded report is incomplete (%(detail)s). Nothing was changed; start the "
        "import again.",
        detail=_detail(p),
    ),
    "staging_lost": lambda p: _(
        "The report rows saved for this import were lost (the database restarted?). "
        "Nothing was changed; start the import again."
    ),
    "undecodable": lambda p: _(
        "The report could not be decoded (%(detail)s). Nothing was changed.", detail=_detail(p)
    ),
    "missing_credentials": lambda p: _(
        "The integration has no complete LWA credentials. Fill in the client ID, client "
        "secret and refresh token in the Connection tab."
    ),
    "inactive": lambda p: _("The integration is inactive. Activate it before importing."),
    "amazon_auth": lambda p: _(
        "Amazon rejected the LWA credentials (client ID, client secret or refresh token). "
        "Check them in the integration's Connection tab. Amazon said: %(detail)s",
        detail=_detail(p),
    ),
    "amazon_forbidden": lambda p: _(
        "Amazon refused access to the Reports API: the SP-API application lacks the role "
        "needed for inventory reports, or the seller revoked the authorisation. Grant the "
        "role in the Developer Console or authorise the application again. Amazon said: "
        "%(detail)s",
        detail=_detail(p),
    ),
    "amazon_throttled": lambda p: _(
        "Amazon kept throttling the requests (QuotaExceeded). Try again later. Details: "
        "%(detail)s",
        detail=_detail(p),
    ),
    "amazon_unavailable": lambda p: _(
        "Amazon did not answer correctly (server or network error). Try again later. "
        "Details: %(detail)s",
        detail=_detail(p),
    ),
    "amazon_bad_request": lambda p: _("Amazon rejected the request: %(detail)s", detail=_detail(p)),
    "report_fatal": lambda p: _(
        "Amazon could not generate the report (status FATAL). Amazon's explanation: "
        "%(detail)s",
        detail=_detail(p) or "-",
    ),
    "report_cancelled": lambda p: _(
        "Amazon cancelled the report because it has no data for this marketplace and "
        "account: there are no listings to import. No offer was changed."
    ),
    "report_timeout": lambda p: _(
        "Amazon did not finish the report within %(hours)s hours. No offer was changed; "
        "try again later.",
        hours=p.get("hours", "?"),
    ),
    "download_failed": lambda p: _(
        "Downloading the report from Amazon failed: %(detail)s. No offer was changed.",
        detail=_detail(p),
    ),
    "url_not_allowed": lambda p: _(
        "Amazon's answer pointed to a download address outside Amazon's document hosts "
        "(%(detail)s); it was not contacted. No offer was changed.",
        detail=_detail(p),
    ),
    "worker_died": lambda p: _(
        "The worker running this import stopped before it finished (killed, restarted or "
        "lost). Nothing from this run was applied; start the import again."
    ),
    "worker_missing": lambda p: _(
        "No worker picked up this import in time. Make sure 'flask xsale-amazon worker' is "
        "running, then start the import again."
    ),
    "queue_unavailable": lambda p: _(
        "The job queue (Redis) is not reachable, so the import could not be started: "
        "%(detail)s",
        detail=_detail(p),
    ),
    "database": lambda p: _(
        "The database connection failed during the import: %(detail)s. Nothing from this "
        "run was applied; start the import again.",
        detail=_detail(p),
    ),
    "internal": lambda p: _(
        "Unexpected error: %(detail)s. Nothing from this run was applied.", detail=_detail(p)
    ),
    "cancelled": lambda p: _(
        "The import was cancelled. Nothing from this run was applied; the offers are as "
        "they were before."
    ),
}

#: The texts of :data:`AMAZON_MESSAGE_CODES` without what Amazon said.
_SHORT_ERROR_TEXTS: dict[str, Callable[[], str]] = {
    "amazon_auth": lambda: _(
        "Amazon rejected the LWA credentials (client ID, client secret or refresh token). "
        "Check them in the integration's Connection tab, then use Test connection."
    ),
    "amazon_forbidden": lambda: _(
        "Amazon refused access to the Reports API: the SP-API application lacks the role "
        "needed for inventory reports, or the seller revoked the authorisation. Grant the "
        "role in the Developer Console or authorise the application again."
    ),
    "amazon_throttled": lambda: _("Amazon kept throttling the requests. Try again later."),
    "amazon_unavailable": lambda: _(
        "Amazon did not answer correctly (server or network error). Try again later."
    ),
    "amazon_bad_request": lambda: _("Amazon rejected the request."),
    "report_fatal": lambda: _("Amazon could not generate the report (status FATAL)."),
    "download_failed": lambda: _(
        "Downloading the report from Amazon failed. No offer was changed."
    ),
}


def amazon_message(code: str | None, params: dict[str, Any] | None = None) -> str | None:
    """What Amazon itself said about the error (English, as Amazon wrote it), if anything."""
    if code not in AMAZON_MESSAGE_CODES:
        return None
    p = params or {}
    return str(p.get("amazon") or p.get("detail") or "") or None


def remedy_first(code: str | None) -> bool:
    """Whether re-running cannot help until the operator fixes something (see the code)."""
    return code in REMEDY_FIRST_CODES


def connection_result_text(kind: str | None) -> str:
    """The result of *Test connection* (``kind`` None: it worked)."""
    if kind is None:
        return _("Connection works: Amazon accepted the credentials and answered a Reports API "
                 "call for this marketplace.")
    return {
        "missing": _("Fill in the LWA client ID, client secret and refresh token first."),
        "auth": _("Login with Amazon rejected the credentials: the LWA client ID, client "
                  "secret or refresh token is wrong, or the seller revoked the authorisation."),
        "forbidden": _("The credentials are valid, but Amazon refused the Reports API call: "
                       "the application lacks the role for inventory reports, or it is not "
                       "authorised for this seller and marketplace."),
        "throttled": _("Amazon is throttling the requests right now. Try again in a minute."),
    }.get(kind, _("Amazon could not be reached or answered with an error. Try again later."))


def _current_locale() -> Any:
    """The request's Babel locale, or None outside a request / without Flask-Babel."""
    if not has_request_context() or "babel" not in current_app.extensions:
        return None
    try:
        return get_locale()
    except Exception:  # a host locale selector that fails must not break the page
        return None


def status_badge_class(status: str) -> str:
    """The Bootstrap badge colour of a run status."""
    return {"succeeded": "success", "failed": "danger", "no_data": "secondary", "held": "warning",
            "discarded": "secondary", "cancelled": "warning"}.get(status, "info")


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
        "cancelled": _("Cancelled"),
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


def ended_stage_label(run: Any) -> str:
    """The stage to show for a run: where an ended run stopped, not where it last waited."""
    if run.status == "no_data":
        return _("No data at Amazon")
    if run.status == "cancelled":
        return _("Cancelled")
    if run.status == "failed":
        return _("Stopped while: %(stage)s", stage=stage_label(run.stage))
    return stage_label(run.stage)


_CHARSETS = {"utf-8": "UTF-8", "utf_8": "UTF-8", "cp1252": "Windows-1252", "cp932": "Shift-JIS",
             "shift_jis": "Shift-JIS", "gb18030": "GB18030", "gbk": "GBK", "cp1250": "Windows-1250",
             "cp1254": "Windows-1254", "latin-1": "ISO-8859-1", "iso-8859-1": "ISO-8859-1"}
_FAMILY_LANGUAGES = {"jp": "ja", "cn": "zh"}


def report_format_text(encoding: str | None, header_family: str | None) -> str | None:
    """``Windows-1252 text, column names in English`` for a run's report, in plain words."""
    if not encoding and not header_family:
        return None
    charset = _CHARSETS.get((encoding or "").lower(), (encoding or "?").upper())
    if not header_family:
        return _("%(charset)s text", charset=charset)
    code = _FAMILY_LANGUAGES.get(header_family, header_family)
    locale = _current_locale()
    language = None
    if locale is not None:
        language = locale.languages.get(code)
    if language is None:
        language = Locale("en").languages.get(code, header_family)
    return _("%(charset)s text, column names in %(language)s", charset=charset,
             language=language)
