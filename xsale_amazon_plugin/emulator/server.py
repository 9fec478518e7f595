"""A local SP-API emulator: LWA token endpoint, Reports API 2021-06-30 and pre-signed documents.

It speaks plain HTTP on the loopback interface the way Amazon does (paths, status codes, JSON
error shapes, S3-style XML errors for document downloads), so the real ``python-amazon-sp-api``
client and our download code can be exercised end to end. It accepts any credentials that were
registered with :meth:`SpApiEmulator.add_account` and must never be exposed on a network.

The emulator can be driven in-process (:class:`SpApiEmulator`) or, when the code under test runs
in another process, over a small JSON control API under ``/_emulator/`` (:class:`EmulatorControl`).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import itertools
import json
import math
import secrets
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx

REPORT_TYPE = "GET_MERCHANT_LISTINGS_ALL_DATA"
API_PREFIX = "/reports/2021-06-30"
TOKEN_PATH = "/auth/o2/token"
DOCS_PREFIX = "/_docs/"
CONTROL_PREFIX = "/_emulator/"
OPERATIONS = ("token", "createReport", "getReports", "getReport", "getReportDocument", "download")
STATUSES = ("IN_QUEUE", "IN_PROGRESS", "DONE", "CANCELLED", "FATAL")
FINAL_STATUSES = ("DONE", "CANCELLED", "FATAL")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
_WRITE_CHUNK = 256 * 1024

_SP_ERRORS = {
    400: ("InvalidInput", "Invalid input."),
    403: ("Unauthorized", "Access to requested resource is denied."),
    404: ("NotFound", "The resource specified does not exist."),
    429: ("QuotaExceeded", "You exceeded your quota for the requested resource."),
    500: ("InternalFailure", "We encountered an internal error. Please try again."),
    503: ("ServiceUnavailable", "Service temporarily unavailable. Please try again."),
}
_LWA_ERRORS = {
    400: ("invalid_grant", "The request has an invalid grant parameter : refresh_token"),
    401: ("invalid_client", "Client authentication failed"),
    429: ("slow_down", "The request was throttled"),
    500: ("server_error", "The server encountered an unexpected error"),
    503: ("temporarily_unavailable", "The server is temporarily unavailable"),
}
_S3_ERRORS = {
    400: ("AuthorizationQueryParametersError", "X-Amz-Expires must be non-negative"),
    403: ("AccessDenied", "Request has expired"),
    404: ("NoSuchKey", "The specified key does not exist."),
    429: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _s3_xml(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
    ).encode()


@dataclass
class _Account:
    client_id: str
    client_secret: str
    refresh_token: str
    roles: tuple[str, ...]


@dataclass
class _Listing:
    content: bytes
    charset: str | None
    gzip: bool
    polls_until_done: int
    final_status: str
    fatal_document: bytes | None
    double_gzip: bool
    content_encoding_gzip: bool
    #: getReportDocument says GZIP but the bytes are served plain (seen with damaged files).
    claim_gzip: bool = False


@dataclass
class _Document:
    document_id: str
    body: bytes
    charset: str | None
    compressed: bool
    content_encoding_gzip: bool


@dataclass
class _Report:
    report_id: str
    marketplace_ids: list[str]
    created: datetime
    status: str
    listing: _Listing | None
    polls_until_done: int
    final_status: str
    report_options: dict[str, str] = field(default_factory=dict)
    polls: int = 0
    document_id: str | None = None
    started: datetime | None = None
    ended: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "reportId": self.report_id,
            "reportType": REPORT_TYPE,
            "marketplaceIds": list(self.marketplace_ids),
            "createdTime": _iso(self.created),
            "dataStartTime": _iso(self.created),
            "dataEndTime": _iso(self.created),
            "processingStatus": self.status,
        }
        if self.started:
            data["processingStartTime"] = _iso(self.started)
        if self.ended:
            data["processingEndTime"] = _iso(self.ended)
        if self.document_id:
            data["reportDocumentId"] = self.document_id
        return data


@dataclass
class _Config:
    url_ttl: float = 300.0
    latency: float = 0.0
    cut_download_after: int | None = None
    truncate_gzip: bool = False
    stuck_in_progress: bool = False
    forbidden: bool = False
    document_url: str | None = None
    #: Throttle of document downloads in bytes per second (None: as fast as possible).
    download_rate: float | None = None
    #: Extra latency of single operations in seconds, added to ``latency``.
    operation_latency: dict[str, float] = field(default_factory=dict)


class _Reply(Exception):
    """Raised inside a handler to answer with a ready-made response."""

    def __init__(self, status: int, body: bytes, content_type: str, headers: dict | None = None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


def _json_reply(status: int, payload: Any, headers: dict | None = None) -> _Reply:
    return _Reply(status, json.dumps(payload).encode(), "application/json", headers)


def _sp_error(status: int, code: str | None = None, message: str | None = None) -> _Reply:
    default_code, default_message = _SP_ERRORS.get(status, ("InternalFailure", "Error."))
    error = {"code": code or default_code, "message": message or default_message, "details": ""}
    return _json_reply(status, {"errors": [error]})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: SpApiEmulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle + delayed ACK add
        # ~40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.emulator._dispatch(self, "GET")

    def do_POST(self) -> None:
        self.server.emulator._dispatch(self, "POST")

    def do_DELETE(self) -> None:
        self.server.emulator._dispatch(self, "DELETE")


class SpApiEmulator:
    """In-process SP-API + LWA + S3 emulator bound to the loopback interface."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError("The SP-API emulator only binds to the loopback interface.")
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._signing_key = secrets.token_bytes(32)
        self._reset_state()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("The emulator is not running; call start() first.")
        return f"http://{self._host}:{self._server.server_address[1]}"

    @property
    def lwa_url(self) -> str:
        return self.url + TOKEN_PATH

    def start(self) -> SpApiEmulator:
        if self._server is not None:
            return self
        server = _Server((self._host, self._port), _Handler)
        server.emulator = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"sp-api-emulator-{server.server_address[1]}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SpApiEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- configuration -----------------------------------------------------------------------

    def _reset_state(self) -> None:
        with self._lock:
            self._accounts: dict[str, _Account] = {}
            self._tokens: dict[str, str] = {}
            self._listings: dict[str, _Listing] = {}
            self._reports: dict[str, _Report] = {}
            self._documents: dict[str, _Document] = {}
            self._urls: dict[str, tuple[str, float]] = {}
            self._pages: dict[str, tuple[list[str], int]] = {}
            self._injections: dict[str, deque[tuple[int, float | None]]] = {}
            self._config = _Config()
            self._log: list[dict[str, Any]] = []
            self._ids = itertools.count(50_000_000_001)

    def reset(self) -> None:
        """Forget accounts, tokens, listings, reports, injections, configuration and the log."""
        self._reset_state()

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A snapshot of the request log (oldest first)."""
        with self._lock:
            return [dict(entry) for entry in self._log]

    def add_account(
        self,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        *,
        roles: Sequence[str] = ("reports",),
    ) -> None:
        with self._lock:
            self._accounts[refresh_token] = _Account(
                client_id, client_secret, refresh_token, tuple(roles)
            )

    def set_listings(
        self,
        marketplace_id: str,
        content: bytes,
        *,
        charset: str | None = "utf-8",
        gzip: bool = True,
        polls_until_done: int = 1,
        final_status: str = "DONE",
        fatal_document: bytes | None = None,
        double_gzip: bool = False,
        content_encoding_gzip: bool = False,
        claim_gzip: bool = False,
    ) -> None:
        """Set what the next reports for ``marketplace_id`` contain and how they finish.

        ``claim_gzip`` (with ``gzip=False``) announces GZIP compression but serves ``content``
        as it is."""
        if final_status not in FINAL_STATUSES:
            raise ValueError(f"final_status must be one of {FINAL_STATUSES}")
        listing = _Listing(
            bytes(content),
            charset,
            gzip,
            max(1, int(polls_until_done)),
            final_status,
            fatal_document,
            double_gzip,
            content_encoding_gzip,
            claim_gzip,
        )
        with self._lock:
            self._listings[marketplace_id] = listing

    def inject(self, operation: str, *statuses: int, retry_after: float | None = None) -> None:
        """Answer the next calls of ``operation`` with these HTTP statuses, in order."""
        if operation not in OPERATIONS:
            raise ValueError(f"operation must be one of {OPERATIONS}")
        with self._lock:
            queue = self._injections.setdefault(operation, deque())
            queue.extend((int(status), retry_after) for status in statuses)

    def configure(
        self,
        *,
        url_ttl: float = 300.0,
        latency: float = 0.0,
        cut_download_after: int | None = None,
        truncate_gzip: bool = False,
        stuck_in_progress: bool = False,
        forbidden: bool = False,
        document_url: str | None = None,
        download_rate: float | None = None,
        operation_latency: dict[str, float] | None = None,
    ) -> None:
        """Replace the behaviour switches (every call starts from the defaults).

        ``document_url`` makes getReportDocument hand out that URL instead of a local one.
        ``download_rate`` throttles document downloads to that many bytes per second (a slow
        S3); ``operation_latency`` delays single operations (e.g. ``{"getReport": 1.0}``) on
        top of ``latency``.
        """
        if download_rate is not None and download_rate <= 0:
            raise ValueError("download_rate must be positive")
        unknown = set(operation_latency or ()) - set(OPERATIONS)
        if unknown:
            raise ValueError(f"operation_latency keys must be among {OPERATIONS}")
        with self._lock:
            self._config = _Config(
                url_ttl=url_ttl,
                latency=latency,
                cut_download_after=cut_download_after,
                truncate_gzip=truncate_gzip,
                stuck_in_progress=stuck_in_progress,
                forbidden=forbidden,
                document_url=document_url,
                download_rate=download_rate,
                operation_latency={k: float(v) for k, v in (operation_latency or {}).items()},
            )

    def add_existing_report(
        self,
        marketplace_id: str | Sequence[str],
        *,
        created_at: datetime,
        status: str = "DONE",
    ) -> str:
        """Register a finished report (as if created earlier) for getReports; returns its id.

        The document uses the marketplace's current listings (an empty file if none were set).
        """
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        ids = [marketplace_id] if isinstance(marketplace_id, str) else list(marketplace_id)
        created = created_at if created_at.tzinfo else created_at.replace(tzinfo=timezone.utc)
        with self._lock:
            listing = self._listings.get(ids[0]) or _Listing(
                b"", "utf-8", True, 1, "DONE", None, False, False
            )
            report = _Report(
                str(next(self._ids)),
                ids,
                created,
                status,
                listing,
                1,
                status,
                started=created,
                ended=created if status in FINAL_STATUSES else None,
            )
            if status == "DONE" or (status == "FATAL" and listing.fatal_document is not None):
                report.document_id = self._make_document(listing, status)
            self._reports[report.report_id] = report
            return report.report_id

    # -- request handling ----------------------------------------------------------------------

    def _dispatch(self, handler: _Handler, method: str) -> None:
        parts = urlsplit(handler.path)
        path = parts.path
        query_pairs = parse_qsl(parts.query, keep_blank_values=True)
        length = int(handler.headers.get("Content-Length") or 0)
        raw_body = handler.rfile.read(length) if length > 0 else b""
        headers = {key.lower(): value for key, value in handler.headers.items()}

        if path.startswith(CONTROL_PREFIX):
            self._run(handler, lambda: self._control(method, path, raw_body), None)
            return

        operation = self._operation(method, path)
        entry: dict[str, Any] = {
            "operation": operation,
            "method": method,
            "path": path,
            "query": _flatten_query(query_pairs),
            "headers": headers,
            "json": None,
            "form": None,
            "status": None,
            "time": time.time(),
        }
        if raw_body:
            if headers.get("content-type", "").startswith("application/json"):
                try:
                    entry["json"] = json.loads(raw_body)
                except ValueError:
                    entry["json"] = None
            elif "form-urlencoded" in headers.get("content-type", ""):
                entry["form"] = dict(parse_qsl(raw_body.decode("utf-8", "replace")))
        with self._lock:
            self._log.append(entry)
            latency = self._config.latency + self._config.operation_latency.get(operation or "", 0)
        if latency > 0:
            time.sleep(latency)

        def answer() -> _Reply | None:
            if operation is None:
                raise _sp_error(404, "NotFound", f"Unknown resource {method} {path}")
            self._maybe_inject(operation)
            if operation == "token":
                return self._token(entry["form"] or {})
            if operation == "download":
                return self._download(handler, path, dict(query_pairs), entry)
            self._authorise(headers)
            if operation == "createReport":
                return self._create_report(entry["json"])
            if operation == "getReports":
                return self._get_reports(query_pairs)
            if operation == "getReport":
                return self._get_report(path.rsplit("/", 1)[1])
            return self._get_report_document(path.rsplit("/", 1)[1])

        self._run(handler, answer, entry)

    def _run(self, handler: _Handler, answer: Any, entry: dict | None) -> None:
        try:
            reply = answer()
        except _Reply as exc:
            reply = exc
        except Exception as exc:  # a bug in the emulator must still produce an HTTP answer
            reply = _sp_error(500, "InternalFailure", f"Emulator error: {exc!r}")
        if entry is not None and reply is not None:
            entry["status"] = reply.status
        if reply is not None:
            self._send(handler, reply)

    @staticmethod
    def _operation(method: str, path: str) -> str | None:
        if path == TOKEN_PATH and method == "POST":
            return "token"
        if path.startswith(DOCS_PREFIX) and method == "GET":
            return "download"
        if path == f"{API_PREFIX}/reports":
            return {"POST": "createReport", "GET": "getReports"}.get(method)
        if path.startswith(f"{API_PREFIX}/reports/") and method == "GET" and path.count("/") == 4:
            return "getReport"
        if path.startswith(f"{API_PREFIX}/documents/") and method == "GET":
            return "getReportDocument"
        return None

    @staticmethod
    def _send(handler: _Handler, reply: _Reply) -> None:
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", reply.content_type)
            handler.send_header("Content-Length", str(len(reply.body)))
            handler.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            for key, value in reply.headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    def _maybe_inject(self, operation: str) -> None:
        with self._lock:
            queue = self._injections.get(operation)
            if not queue:
                return
            status, retry_after = queue.popleft()
        headers = {"Retry-After": _format_seconds(retry_after)} if retry_after is not None else {}
        if operation == "token":
            code, message = _LWA_ERRORS.get(status, ("server_error", "Error"))
            raise _json_reply(status, {"error": code, "error_description": message}, headers)
        if operation == "download":
            code, message = _S3_ERRORS.get(status, ("InternalError", "Error"))
            raise _Reply(status, _s3_xml(code, message), "application/xml", headers)
        reply = _sp_error(status)
        reply.headers.update(headers)
        raise reply

    # -- LWA -------------------------------------------------------------------------------

    def _token(self, form: dict[str, str]) -> _Reply:
        if form.get("grant_type") != "refresh_token":
            raise _json_reply(
                400, {"error": "unsupported_grant_type", "error_description": "Unsupported grant"}
            )
        with self._lock:
            account = self._accounts.get(form.get("refresh_token", ""))
            by_client = [a for a in self._accounts.values() if a.client_id == form.get("client_id")]
            if not by_client or not any(
                hmac.compare_digest(a.client_secret, form.get("client_secret", ""))
                for a in by_client
            ):
                raise _json_reply(
                    400,
                    {
                        "error": "invalid_client",
                        "error_description": "Client authentication failed",
                    },
                )
            if account is None or account.client_id != form.get("client_id"):
                raise _json_reply(
                    400,
                    {
                        "error": "invalid_grant",
                        "error_description": "The request has an invalid grant parameter : "
                        "refresh_token",
                    },
                )
            token = "Atza|" + secrets.token_urlsafe(32)
            self._tokens[token] = account.refresh_token
        return _json_reply(
            200,
            {"access_token": token, "token_type": "bearer", "expires_in": 3600},
            {"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    def _authorise(self, headers: dict[str, str]) -> None:
        token = headers.get("x-amz-access-token", "")
        with self._lock:
            refresh_token = self._tokens.get(token)
            account = self._accounts.get(refresh_token) if refresh_token else None
            forbidden = self._config.forbidden
        if account is None or forbidden or "reports" not in account.roles:
            raise _sp_error(403, "Unauthorized", "Access to requested resource is denied.")

    # -- Reports API ---------------------------------------------------------------------------

    def _create_report(self, body: Any) -> _Reply:
        if not isinstance(body, dict):
            raise _sp_error(400, "InvalidInput", "Request body must be a JSON object.")
        if body.get("reportType") != REPORT_TYPE:
            raise _sp_error(
                400, "InvalidInput", f"This emulator only supports reportType {REPORT_TYPE}."
            )
        ids = body.get("marketplaceIds")
        if not isinstance(ids, list) or len(ids) != 1 or not isinstance(ids[0], str):
            raise _sp_error(
                400, "InvalidInput", "marketplaceIds must contain exactly one marketplace id."
            )
        options = body.get("reportOptions") or {}
        if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
            raise _sp_error(400, "InvalidInput", "reportOptions must map strings to strings.")
        with self._lock:
            listing = self._listings.get(ids[0])
            report = _Report(
                str(next(self._ids)),
                list(ids),
                _now(),
                "IN_QUEUE",
                listing,
                listing.polls_until_done if listing else 1,
                # Amazon cancels a report when there is no data to return.
                listing.final_status if listing else "CANCELLED",
                report_options=dict(options),
            )
            self._reports[report.report_id] = report
        return _json_reply(202, {"reportId": report.report_id})

    def _get_report(self, report_id: str) -> _Reply:
        with self._lock:
            report = self._reports.get(report_id)
            if report is None:
                raise _sp_error(404, "NotFound", f"Report {report_id} not found.")
            if report.status not in FINAL_STATUSES:
                report.polls += 1
                if self._config.stuck_in_progress:
                    report.status = "IN_PROGRESS"
                elif report.polls >= report.polls_until_done:
                    self._finish(report)
                elif report.polls > 1:
                    report.status = "IN_PROGRESS"
                if report.status != "IN_QUEUE" and report.started is None:
                    report.started = _now()
            return _json_reply(200, report.as_json())

    def _finish(self, report: _Report) -> None:
        report.status = report.final_status
        report.ended = _now()
        listing = report.listing
        if listing is None:
            return
        if report.status == "DONE" or (
            report.status == "FATAL" and listing.fatal_document is not None
        ):
            report.document_id = self._make_document(listing, report.status)

    def _make_document(self, listing: _Listing, status: str) -> str:
        raw = listing.content if status == "DONE" else (listing.fatal_document or b"")
        body = raw
        compressed = listing.gzip or listing.double_gzip
        if compressed:
            body = gzip.compress(body, compresslevel=6, mtime=0)
        if listing.double_gzip:
            body = gzip.compress(body, compresslevel=6, mtime=0)
        if listing.content_encoding_gzip and not compressed:
            body = gzip.compress(body, compresslevel=6, mtime=0)
        document_id = f"amzn1.spdoc.1.4.na.{uuid.uuid4()}.T{secrets.token_hex(6).upper()}.47700"
        self._documents[document_id] = _Document(
            document_id, body, listing.charset, compressed or listing.claim_gzip,
            listing.content_encoding_gzip,
        )
        return document_id

    def _get_reports(self, pairs: list[tuple[str, str]]) -> _Reply:
        query: dict[str, list[str]] = {}
        for key, value in pairs:
            query.setdefault(key, []).extend(v for v in value.split(",") if v)
        with self._lock:
            if "nextToken" in query:
                if len(query) > 1:
                    raise _sp_error(400, "InvalidInput", "nextToken must be the only parameter.")
                page = self._pages.pop(query["nextToken"][0], None)
                if page is None:
                    raise _sp_error(400, "InvalidInput", "Invalid nextToken.")
                ids, page_size = page
            else:
                ids, page_size = self._search_reports(query)
            current, rest = ids[:page_size], ids[page_size:]
            payload: dict[str, Any] = {
                "reports": [self._reports[i].as_json() for i in current if i in self._reports]
            }
            if rest:
                token = secrets.token_urlsafe(16)
                self._pages[token] = (rest, page_size)
                payload["nextToken"] = token
        return _json_reply(200, payload)

    def _search_reports(self, query: dict[str, list[str]]) -> tuple[list[str], int]:
        types = query.get("reportTypes")
        if not types:
            raise _sp_error(400, "InvalidInput", "reportTypes or nextToken is required.")
        statuses = set(query.get("processingStatuses") or STATUSES)
        marketplaces = set(query.get("marketplaceIds") or [])
        try:
            since = _parse_time(query["createdSince"][0]) if "createdSince" in query else None
            until = _parse_time(query["createdUntil"][0]) if "createdUntil" in query else None
            page_size = int((query.get("pageSize") or ["10"])[0])
        except (ValueError, IndexError):
            raise _sp_error(400, "InvalidInput", "Invalid date or pageSize.") from None
        if not 1 <= page_size <= 100:
            raise _sp_error(400, "InvalidInput", "pageSize must be between 1 and 100.")
        since = since or _now() - timedelta(days=90)
        until = until or _now()
        found = [
            r
            for r in self._reports.values()
            if REPORT_TYPE in types
            and r.status in statuses
            and (not marketplaces or marketplaces.intersection(r.marketplace_ids))
            and since <= r.created <= until
        ]
        found.sort(key=lambda r: r.created, reverse=True)
        return [r.report_id for r in found], page_size

    def _get_report_document(self, document_id: str) -> _Reply:
        with self._lock:
            document = self._documents.get(document_id)
            if document is None:
                raise _sp_error(404, "NotFound", f"Report document {document_id} not found.")
            ttl = self._config.url_ttl
            url = self._config.document_url or self._presign(document_id, ttl)
        payload = {"reportDocumentId": document_id, "url": url}
        if document.compressed:
            payload["compressionAlgorithm"] = "GZIP"
        return _json_reply(200, payload)

    def _presign(self, document_id: str, ttl: float) -> str:
        token = secrets.token_urlsafe(24)
        self._urls[token] = (document_id, time.monotonic() + ttl)
        stamp = _now().strftime("%Y%m%dT%H%M%SZ")
        signature = hmac.new(self._signing_key, token.encode(), hashlib.sha256).hexdigest()
        credential = quote(f"AKIAEMULATOR/{stamp[:8]}/us-east-1/s3/aws4_request", safe="")
        return (
            f"{self.url}{DOCS_PREFIX}{token}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Date={stamp}&X-Amz-SignedHeaders=host&X-Amz-Expires={math.ceil(ttl)}"
            f"&X-Amz-Credential={credential}&X-Amz-Signature={signature}"
        )

    # -- document download (the "S3" side) ------------------------------------------------------

    def _download(
        self, handler: _Handler, path: str, query: dict[str, str], entry: dict[str, Any]
    ) -> None:
        headers = entry["headers"]
        entry["auth_header_sent"] = bool(
            headers.get("authorization") or headers.get("x-amz-access-token")
        )
        token = path[len(DOCS_PREFIX) :]
        expected = hmac.new(self._signing_key, token.encode(), hashlib.sha256).hexdigest()
        with self._lock:
            known = self._urls.get(token)
            config = self._config
            document = self._documents.get(known[0]) if known else None
        if (
            known is None
            or document is None
            or not hmac.compare_digest(expected, query.get("X-Amz-Signature", ""))
        ):
            raise _Reply(
                403,
                _s3_xml(
                    "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature "
                    "you provided.",
                ),
                "application/xml",
            )
        if time.monotonic() > known[1]:
            raise _Reply(403, _s3_xml("AccessDenied", "Request has expired"), "application/xml")

        body = document.body
        if config.truncate_gzip and body[:2] == b"\x1f\x8b":
            body = body[: len(body) // 2]
        content_type = "text/plain"
        if document.charset is not None:
            content_type += f"; charset={document.charset}"
        entry["status"] = 200
        view = memoryview(body)
        limit = len(view) if config.cut_download_after is None else config.cut_download_after
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(view)))
            if document.content_encoding_gzip:
                handler.send_header("Content-Encoding", "gzip")
            handler.send_header("x-amz-request-id", uuid.uuid4().hex[:16].upper())
            handler.end_headers()
            rate = config.download_rate
            chunk = _WRITE_CHUNK if rate is None else max(1024, min(_WRITE_CHUNK, int(rate / 20)))
            started = time.monotonic()
            for offset in range(0, min(limit, len(view)), chunk):
                handler.wfile.write(view[offset : min(offset + chunk, limit)])
                if rate is not None:
                    handler.wfile.flush()
                    ahead = started + (offset + chunk) / rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        if limit < len(view):
            # Content-Length promised more: closing now looks like a dropped connection.
            handler.close_connection = True
        return None

    # -- control API ---------------------------------------------------------------------------

    def _control(self, method: str, path: str, raw_body: bytes) -> _Reply:
        action = path[len(CONTROL_PREFIX) :].strip("/")
        if method == "GET" and action == "requests":
            return _json_reply(200, self.requests)
        if method == "GET" and action == "health":
            return _json_reply(200, {"status": "ok", "url": self.url})
        if method != "POST":
            raise _json_reply(405, {"error": "method not allowed"})
        try:
            data = json.loads(raw_body or b"{}")
        except ValueError:
            raise _json_reply(400, {"error": "body must be JSON"}) from None
        try:
            if action == "accounts":
                self.add_account(
                    data["client_id"],
                    data["client_secret"],
                    data["refresh_token"],
                    roles=tuple(data.get("roles", ("reports",))),
                )
            elif action == "listings":
                fatal = data.get("fatal_document")
                self.set_listings(
                    data["marketplace_id"],
                    base64.b64decode(data.get("content", "")),
                    charset=data.get("charset", "utf-8"),
                    gzip=bool(data.get("gzip", True)),
                    polls_until_done=int(data.get("polls_until_done", 1)),
                    final_status=data.get("final_status", "DONE"),
                    fatal_document=base64.b64decode(fatal) if fatal is not None else None,
                    double_gzip=bool(data.get("double_gzip", False)),
                    content_encoding_gzip=bool(data.get("content_encoding_gzip", False)),
                    claim_gzip=bool(data.get("claim_gzip", False)),
                )
            elif action == "inject":
                self.inject(
                    data["operation"],
                    *data.get("statuses", []),
                    retry_after=data.get("retry_after"),
                )
            elif action == "configure":
                self.configure(**data)
            elif action == "existing_reports":
                report_id = self.add_existing_report(
                    data["marketplace_id"],
                    created_at=_parse_time(data["created_at"]),
                    status=data.get("status", "DONE"),
                )
                return _json_reply(200, {"reportId": report_id})
            elif action == "reset":
                self.reset()
            elif action == "clear_requests":
                self.clear_requests()
            else:
                raise _json_reply(404, {"error": f"unknown control action {action!r}"})
        except (KeyError, TypeError, ValueError) as exc:
            raise _json_reply(400, {"error": f"{type(exc).__name__}: {exc}"}) from None
        return _json_reply(200, {"ok": True})


def _flatten_query(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    query: dict[str, str] = {}
    for key, value in pairs:
        query[key] = f"{query[key]},{value}" if key in query else value
    return query


def _format_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class EmulatorControl:
    """Drive an emulator running in another process through its ``/_emulator/`` control API."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url + CONTROL_PREFIX.rstrip("/"), timeout=timeout)

    @property
    def lwa_url(self) -> str:
        return self.url + TOKEN_PATH

    def _post(self, action: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self._http.post(f"/{action}", json=payload or {})
        if response.status_code != 200:
            raise RuntimeError(f"Emulator control {action} failed: {response.text}")
        return response.json()

    def wait_until_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._http.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"SP-API emulator at {self.url} did not answer in {timeout}s")
            time.sleep(0.05)

    def add_account(
        self,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        *,
        roles: Sequence[str] = ("reports",),
    ) -> None:
        self._post(
            "accounts",
            {
                "client_id": client_id,
                "client_secret": client_secret,
                "refresh_token": refresh_token,
                "roles": list(roles),
            },
        )

    def set_listings(
        self,
        marketplace_id: str,
        content: bytes,
        *,
        charset: str | None = "utf-8",
        gzip: bool = True,
        polls_until_done: int = 1,
        final_status: str = "DONE",
        fatal_document: bytes | None = None,
        double_gzip: bool = False,
        content_encoding_gzip: bool = False,
        claim_gzip: bool = False,
    ) -> None:
        self._post(
            "listings",
            {
                "marketplace_id": marketplace_id,
                "content": base64.b64encode(content).decode("ascii"),
                "charset": charset,
                "gzip": gzip,
                "polls_until_done": polls_until_done,
                "final_status": final_status,
                "fatal_document": (
                    base64.b64encode(fatal_document).decode("ascii")
                    if fatal_document is not None
                    else None
                ),
                "double_gzip": double_gzip,
                "content_encoding_gzip": content_encoding_gzip,
                "claim_gzip": claim_gzip,
            },
        )

    def inject(self, operation: str, *statuses: int, retry_after: float | None = None) -> None:
        self._post(
            "inject",
            {"operation": operation, "statuses": list(statuses), "retry_after": retry_after},
        )

    def configure(
        self,
        *,
        url_ttl: float = 300.0,
        latency: float = 0.0,
        cut_download_after: int | None = None,
        truncate_gzip: bool = False,
        stuck_in_progress: bool = False,
        forbidden: bool = False,
        document_url: str | None = None,
        download_rate: float | None = None,
        operation_latency: dict[str, float] | None = None,
    ) -> None:
        self._post(
            "configure",
            {
                "url_ttl": url_ttl,
                "latency": latency,
                "cut_download_after": cut_download_after,
                "truncate_gzip": truncate_gzip,
                "stuck_in_progress": stuck_in_progress,
                "forbidden": forbidden,
                "document_url": document_url,
                "download_rate": download_rate,
                "operation_latency": operation_latency or {},
            },
        )

    def add_existing_report(
        self,
        marketplace_id: str | Sequence[str],
        *,
        created_at: datetime,
        status: str = "DONE",
    ) -> str:
        ids = marketplace_id if isinstance(marketplace_id, str) else list(marketplace_id)
        payload = {"marketplace_id": ids, "created_at": created_at.isoformat(), "status": status}
        return self._post("existing_reports", payload)["reportId"]

    def reset(self) -> None:
        self._post("reset")

    def clear_requests(self) -> None:
        self._post("clear_requests")

    @property
    def requests(self) -> list[dict[str, Any]]:
        response = self._http.get("/requests")
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EmulatorControl:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
