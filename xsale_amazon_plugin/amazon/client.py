"""Amazon SP-API Reports client for the All Listings Report (GET_MERCHANT_LISTINGS_ALL_DATA).

The four Reports API calls go through ``python-amazon-sp-api`` (``sp_api.api.Reports``); the
document itself is downloaded with a plain httpx client (the pre-signed S3 URL must not receive
SP-API credentials). Every failure surfaces as :class:`AmazonError` with a ``kind`` the import
job can act on.

Logging: ``sp_api.base.client`` logs the full request headers, including the
``x-amz-access-token``, at DEBUG. Unless the application configured those loggers itself, this
module raises ``sp_api`` loggers to WARNING, and it always attaches a filter that masks access
tokens in their records. This module never logs credentials or tokens.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import httpx
from sp_api.api import Reports
from sp_api.auth import AccessTokenClient
from sp_api.auth import access_token_client as _token_module
from sp_api.auth.exceptions import AuthorizationError
from sp_api.base import exceptions as sp_exceptions
from sp_api.base._transport_httpx import HttpxTransport
from sp_api.base.credential_provider import FromCodeCredentialProvider
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    wait_none,
)
from tenacity.stop import stop_base

from ..timeutil import as_utc, parse_amazon_time
from .charsets import resolve_charset
from .marketplaces import Marketplace

__all__ = [
    "REPORT_TYPE",
    "AmazonError",
    "AmazonReportsClient",
    "DownloadStopped",
    "DownloadedDocument",
    "LwaCredentials",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

REPORT_TYPE = "GET_MERCHANT_LISTINGS_ALL_DATA"
DEFAULT_LWA_ENDPOINT = "https://api.amazon.com/auth/o2/token"
GZIP_MAGIC = b"\x1f\x8b"
#: How many fresh pre-signed URLs we ask for when S3 says the previous one expired.
URL_REFRESHES = 3
#: getReports pages we read at most when looking for a reusable report.
MAX_REPORT_PAGES = 10
_ERROR_BODY_LIMIT = 4096
_TOKEN_PATTERN = re.compile(r"Atz[ar]\|[A-Za-z0-9_\-.~+/=|]+")
_SP_API_LOGGERS = ("sp_api", "sp_api.base.client", "sp_api.auth.access_token_client")


class _MaskTokensFilter(logging.Filter):
    """Mask access tokens that sp_api puts into its DEBUG records (request headers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_mask_arg(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = _mask_arg(record.args)
        return True


def _mask_arg(arg: Any) -> Any:
    if isinstance(arg, dict):
        return {
            key: "***" if str(key).lower() in ("x-amz-access-token", "authorization") else value
            for key, value in arg.items()
        }
    if isinstance(arg, str):
        return _TOKEN_PATTERN.sub("***", arg)
    return arg


def _configure_sp_api_logging() -> None:
    for name in _SP_API_LOGGERS:
        logger = logging.getLogger(name)
        # sp_api.base.client sets INFO itself at import; any other level was chosen by the app.
        if logger.level in (logging.NOTSET, logging.INFO):
            logger.setLevel(logging.WARNING)
        if not any(isinstance(f, _MaskTokensFilter) for f in logger.filters):
            logger.addFilter(_MaskTokensFilter())


_configure_sp_api_logging()


@dataclass(frozen=True)
class LwaCredentials:
    """Login-with-Amazon app credentials plus the seller's refresh token."""

    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)


_RETRYABLE_KINDS = frozenset({"throttled", "server", "network", "download"})


class AmazonError(Exception):
    """A failed Amazon call, classified for the caller (see ``kind``)."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        amazon_code: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        amazon_text: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.amazon_code = amazon_code
        #: Amazon's own words (code and message, English), when Amazon answered at all.
        self.amazon_text = amazon_text
        self.retryable = kind in _RETRYABLE_KINDS if retryable is None else retryable
        #: Seconds Amazon asked us to wait (``Retry-After``) or the back-off the client would
        #: have waited next, when that is longer than it may wait in-process: the caller
        #: should try again after this delay (e.g. through RQ's scheduler), not sleep.
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"AmazonError(kind={self.kind!r}, status={self.status!r}, "
            f"amazon_code={self.amazon_code!r}, retryable={self.retryable!r}, "
            f"retry_after={self.retry_after!r}, message={self.message!r})"
        )


class DownloadStopped(Exception):
    """The caller's ``should_stop`` asked a download to stop (its import was cancelled)."""


@dataclass
class DownloadedDocument:
    """A report document saved to disk (already gunzipped)."""

    path: str
    #: Raw ``charset`` parameter of the download's Content-Type (e.g. ``"Cp1252"``), if any.
    declared_charset: str | None
    compressed: bool
    size: int


@dataclass(frozen=True)
class _SpApiMarketplace:
    """Duck-typed stand-in for ``sp_api.base.Marketplaces`` members."""

    endpoint: str
    marketplace_id: str
    region: str


class _LwaTokenClient(AccessTokenClient):
    """sp_api's token client, pointed at a configurable LWA URL with an endpoint-scoped cache."""

    def __init__(
        self,
        refresh_token: str | None = None,
        credentials: Any = None,
        proxies: Any = None,
        verify: bool = True,
        *,
        token_url: str,
        timeout: float,
    ) -> None:
        super().__init__(
            refresh_token=refresh_token, credentials=credentials, proxies=proxies, verify=verify
        )
        parts = urlsplit(token_url)
        self.scheme = f"{parts.scheme}://"
        self.host = parts.netloc
        self.path = parts.path or "/"
        self.token_url = token_url
        self._transport: HttpxTransport
        self._transport.close()
        # The library's transport has httpx's 5 s default; use the client's timeout instead.
        self._transport = HttpxTransport(timeout=timeout, proxies=proxies, verify=verify)

    def _get_cache_key(self, token_flavor: str = "") -> str:
        # sp_api caches tokens module-wide by refresh token only; a token issued by one LWA
        # endpoint (or for other app credentials) must never be replayed elsewhere. The key is
        # an md5 digest, so the secret does not appear in it.
        scope = (self.token_url, self.cred.client_id, self.cred.client_secret, token_flavor)
        return super()._get_cache_key("\0".join(scope))

    def invalidate(self) -> None:
        _token_module.cache.pop(self._get_cache_key(), None)

    def _request(self, url: str, data: dict, headers: dict) -> dict:
        response = self._transport.request("POST", url, data=data, headers=headers)
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        if response.status_code != 200 or not payload.get("access_token"):
            raise AuthorizationError(
                payload.get("error"), payload.get("error_description"), response.status_code
            )
        return payload

    def close(self) -> None:
        self._transport.close()


class _ReportsApi(Reports):
    """``sp_api.api.Reports`` with a correct Host header and strict HTTP status handling."""

    @property
    def headers(self) -> dict[str, str]:
        headers = super().headers
        # sp_api slices "https://" off the endpoint (endpoint[8:]), which breaks http:// URLs.
        headers["host"] = urlsplit(self.endpoint).netloc
        return headers

    def _check_response(self, res, res_no_data=False, bulk=False, wrap_list=False):
        try:
            response = super()._check_response(res, res_no_data, bulk, wrap_list)
        except sp_exceptions.SellingApiException as exc:
            exc.status_code = res.status_code
            raise
        if res.status_code >= 400:
            # sp_api returns an empty *successful* response when an error has no "errors" body.
            error_cls = sp_exceptions.get_exception_for_code(res.status_code)
            error = [{"code": f"HTTP{res.status_code}", "message": res.reason_phrase or "Error"}]
            http_error = error_cls(error, headers=res.headers)
            http_error.status_code = res.status_code
            raise http_error
        return response


class _UrlRejected(Exception):
    """S3 refused the pre-signed URL (expired or otherwise not accepted)."""

    def __init__(self, status: int, code: str | None, message: str | None) -> None:
        super().__init__(status)
        self.status = status
        self.code = code
        self.message = message


class _StopBeforeLongWait(stop_base):
    """Stop retrying when the sleeps so far plus the next one would exceed ``limit`` seconds.

    A worker must not sleep through Amazon's long waits (a long ``Retry-After``, a 5xx
    streak): past the budget the caller gets the error and re-schedules the call instead.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def __call__(self, retry_state: RetryCallState) -> bool:
        return retry_state.idle_for + retry_state.upcoming_sleep > self.limit


class _Enough(Exception):
    """Raised by a bounded sink once it has collected enough output."""


class _GunzipStage:
    """Streaming writer that gunzips when forced or when the data starts with the gzip magic.

    ``inner`` receives the output; pass another stage to allow one more gzip layer.
    """

    def __init__(self, inner: Callable[[bytes], None] | _GunzipStage, *, force: bool) -> None:
        self._inner = inner
        self._force = force
        self._head = b""
        self._mode: str | None = None  # None (undecided), "plain" or "gzip"
        self._inflater: Any = None
        self._members = 0
        self._trailing = False
        self.gunzipped = False

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        if isinstance(self._inner, _GunzipStage):
            self._inner.write(data)
        else:
            self._inner(data)

    def write(self, data: bytes) -> None:
        if self._mode is None:
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            if data[:2] == GZIP_MAGIC:
                self._mode = "gzip"
            else:
                if self._force:
                    # Declared GZIP but not gzip (e.g. a proxy already decoded it): keep as is.
                    log.warning("Report document declared GZIP but is not gzip; using it as is")
                self._mode = "plain"
            self.gunzipped = self._mode == "gzip"
        if self._mode == "plain":
            self._emit(data)
        else:
            self._inflate(data)

    def _inflate(self, data: bytes) -> None:
        while data and not self._trailing:
            if self._inflater is None:
                data = self._head + data
                self._head = b""
                if len(data) < 2:
                    self._head = data
                    return
                if data[:2] != GZIP_MAGIC:
                    self._trailing = True  # like gzip(1): ignore trailing garbage
                    return
                self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            # max_length keeps memory flat even for highly compressible input.
            self._emit(self._inflater.decompress(data, 1 << 20))
            if self._inflater.eof:
                data = self._inflater.unused_data
                self._inflater = None
                self._members += 1
            else:
                data = self._inflater.unconsumed_tail
        while self._inflater is not None and not self._inflater.eof and not data:
            chunk = self._inflater.decompress(b"", 1 << 20)
            if not chunk:
                break
            self._emit(chunk)

    def finish(self) -> None:
        """Flush; raises ``zlib.error`` if a gzip stream ended early."""
        if self._mode is None:
            if self._force and self._head:
                raise zlib.error("gzip stream too short")
            self._mode = "plain"
            self._emit(self._head)
            self._head = b""
        elif self._mode == "gzip":
            if self._inflater is not None:
                self._emit(self._inflater.flush())
                if not self._inflater.eof:
                    raise zlib.error("gzip stream is truncated")
            if self._members == 0:
                raise zlib.error("gzip stream is empty")
        if isinstance(self._inner, _GunzipStage):
            self._inner.finish()


class AmazonReportsClient:
    """All Listings Report operations for one marketplace and one seller authorisation."""

    def __init__(
        self,
        marketplace: Marketplace,
        credentials: LwaCredentials,
        *,
        spapi_endpoint: str | None = None,
        lwa_endpoint: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 4.0,
        max_retry_wait: float = 8.0,
        allowed_download_hosts: Sequence[str] = ("amazonaws.com", "amazon.com"),
        sleep: Callable[[float], None] = time.sleep,
        max_download_seconds: float = 3600.0,
    ) -> None:
        """``max_retries`` bounds the in-process retries of one throttled (429), failing
        (5xx) or unreachable call; they wait ``backoff`` × 2ⁿ seconds (at most
        ``max_backoff``, or Amazon's ``Retry-After``) and at most ``max_retry_wait``
        seconds in total. A longer wait is not slept: the retryable :class:`AmazonError`
        is raised with ``retry_after`` set, so a job queue can run the call again later
        without holding a worker.
        """
        if not (credentials.client_id and credentials.client_secret and credentials.refresh_token):
            raise AmazonError(
                "auth",
                "The LWA client id, client secret and refresh token are all required.",
                retryable=False,
            )
        self.marketplace = marketplace
        self._credentials = credentials
        self._endpoint = (spapi_endpoint or marketplace.endpoint).rstrip("/")
        self._override_origin = _origin(spapi_endpoint) if spapi_endpoint else None
        self._token_url = lwa_endpoint or DEFAULT_LWA_ENDPOINT
        self._timeout = timeout
        self._max_retries = max(0, int(max_retries))
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._max_retry_wait = max(0.0, max_retry_wait)
        self._allowed_hosts = tuple(h.lower().strip(".") for h in allowed_download_hosts)
        self._sleep = sleep
        self._max_download_seconds = max_download_seconds

        target = _SpApiMarketplace(
            self._endpoint, marketplace.marketplace_id, marketplace.aws_region
        )

        def token_client_factory(**kwargs: Any) -> _LwaTokenClient:
            return _LwaTokenClient(**kwargs, token_url=self._token_url, timeout=timeout)

        self._api = _ReportsApi(
            target,  # duck-typed Marketplaces member
            refresh_token=credentials.refresh_token,
            credentials={
                "lwa_app_id": credentials.client_id,
                "lwa_client_secret": credentials.client_secret,
                "refresh_token": credentials.refresh_token,
            },
            # Only the explicit dict: never env vars, AWS secrets or ~/.config files.
            credential_providers=(FromCodeCredentialProvider,),
            auth_token_client_class=token_client_factory,
            timeout=timeout,
        )
        # Client.__init__ lets SP_API_DEFAULT_MARKETPLACE override the marketplace it was given.
        self._api.endpoint = target.endpoint
        self._api.marketplace_id = target.marketplace_id
        self._api.region = target.region
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False
        )

    # -- Reports API -------------------------------------------------------------------------

    def create_report(self, *, custom: bool = True, locale: str | None = "en_US") -> str:
        """Request a new All Listings Report for this marketplace; returns the reportId."""
        options: dict[str, str] = {}
        if custom:
            options["custom"] = "true"
        if locale:
            options["preferredReportDocumentLocale"] = locale
        body: dict[str, Any] = {
            "reportType": REPORT_TYPE,
            "marketplaceIds": [self.marketplace.marketplace_id],
        }
        if options:
            body["reportOptions"] = options
        response = self._call("createReport", lambda: self._api.create_report(**body))
        report_id = response.payload.get("reportId")
        if not report_id:
            raise AmazonError("server", "Amazon's createReport answer has no reportId.")
        return str(report_id)

    def find_recent_report(
        self, created_since: datetime, exclude: Iterable[str] = ()
    ) -> dict | None:
        """Newest DONE report for exactly this marketplace created since ``created_since``
        whose id is not in ``exclude``."""
        excluded = set(exclude)
        since = as_utc(created_since)
        params: dict[str, Any] = {
            "reportTypes": [REPORT_TYPE],
            "processingStatuses": ["DONE"],
            "marketplaceIds": [self.marketplace.marketplace_id],
            "createdSince": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "pageSize": 100,
        }
        best: dict | None = None
        best_time: datetime | None = None
        for _page in range(MAX_REPORT_PAGES):
            response = self._call("getReports", functools.partial(self._api.get_reports,
                                                                   **params))
            for report in response.payload.get("reports") or []:
                created = parse_amazon_time(report.get("createdTime"))
                if (
                    report.get("processingStatus") == "DONE"
                    and report.get("reportType", REPORT_TYPE) == REPORT_TYPE
                    and report.get("marketplaceIds") == [self.marketplace.marketplace_id]
                    and report.get("reportDocumentId")
                    and str(report.get("reportId")) not in excluded
                    and created is not None
                    and created >= since
                    and (best_time is None or created > best_time)
                ):
                    best, best_time = report, created
            # sp_api moves "nextToken" out of the payload into ApiResponse.next_token.
            if not response.next_token:
                break
            params = {"nextToken": response.next_token}
        return best

    def test_connection(self) -> None:
        """Exchange the refresh token for an access token and make one cheap Reports API call
        (getReports, one result) for this marketplace; raises :class:`AmazonError` on failure.
        """
        params = {"reportTypes": [REPORT_TYPE], "marketplaceIds": [self.marketplace.marketplace_id],
                  "pageSize": 1}
        self._call("getReports", lambda: self._api.get_reports(**params))

    def get_report(self, report_id: str) -> dict:
        """The Report object (processingStatus, reportDocumentId, ...)."""
        response = self._call("getReport", lambda: self._api.get_report(report_id))
        return dict(response.payload)

    def get_document_info(self, document_id: str) -> dict:
        """``{"reportDocumentId", "url", "compressionAlgorithm"?}`` with a fresh pre-signed URL."""
        response = self._call(
            "getReportDocument", lambda: self._api.get_report_document(document_id)
        )
        info = dict(response.payload)
        if not info.get("url"):
            raise AmazonError("server", "Amazon's getReportDocument answer has no download URL.")
        return info

    # -- document download -------------------------------------------------------------------

    def download_document(
        self, document_id: str, dest_path: str, *, chunk_size: int = 1 << 16,
        should_stop: Callable[[], bool] | None = None,
    ) -> DownloadedDocument:
        """Stream the report document to ``dest_path``, gunzipping it (twice if needed).

        ``should_stop`` is asked after every chunk received; when it answers True the
        download stops with :class:`DownloadStopped` and the partial file is removed."""
        part_path = f"{dest_path}.part"
        try:
            with open(part_path, "wb") as handle:
                declared, compressed, size = self._download(document_id, handle, chunk_size,
                                                             should_stop)
            os.replace(part_path, dest_path)
        except BaseException:
            _remove(part_path)
            raise
        return DownloadedDocument(dest_path, declared, compressed, size)

    def read_fatal_document(self, document_id: str, limit: int = 4000) -> str:
        """Text of a FATAL report's document (leniently decoded), truncated to ``limit`` chars."""
        buffer = bytearray()
        max_bytes = max(limit, 0) * 4 + 4

        class _Collector:
            def write(self, data: bytes) -> None:
                buffer.extend(data)
                if len(buffer) >= max_bytes:
                    raise _Enough

        declared, _compressed, _size = self._download(document_id, _Collector(), 64 * 1024)
        codec = resolve_charset(declared) or "utf-8"
        text = bytes(buffer[:max_bytes]).decode(codec, errors="replace")
        return text[:limit] if len(text) > limit else text

    def _download(
        self, document_id: str, sink: Any, chunk_size: int,
        should_stop: Callable[[], bool] | None = None,
    ) -> tuple[str | None, bool, int]:
        """Download the document; when S3 refuses the pre-signed URL (it expired), ask
        Amazon for a fresh one, at most ``URL_REFRESHES`` times."""

        def with_a_fresh_url() -> tuple[str | None, bool, int]:
            info = self.get_document_info(document_id)
            # S3 throttling or a 5xx before any byte arrived is retried like an API call. A
            # cut or corrupt download is not retried here (the sink holds part of it); the
            # import job retries it from scratch.
            return self._retrying(
                "the report download",
                lambda: self._download_once(info, sink, chunk_size, should_stop),
                is_transient=lambda exc: exc.kind in ("throttled", "server"),
            )

        refreshing = Retrying(
            retry=retry_if_exception_type(_UrlRejected),
            stop=stop_after_attempt(URL_REFRESHES + 1),
            wait=wait_none(),
            before_sleep=lambda state: log.info(
                "Report download URL refused (HTTP %s); requesting a fresh URL",
                getattr(_outcome_error(state), "status", "?"),
            ),
            reraise=True,
        )
        try:
            return refreshing(with_a_fresh_url)
        except _UrlRejected as exc:
            detail = f"{exc.code}: {exc.message}" if exc.code else "no details"
            raise AmazonError(
                "download",
                f"The report download URL was refused (HTTP {exc.status}, {detail}) "
                f"even after {URL_REFRESHES} fresh URLs; try the import again later.",
                status=exc.status,
                amazon_code=exc.code,
            ) from None

    def _download_once(
        self, info: dict, sink: Any, chunk_size: int,
        should_stop: Callable[[], bool] | None = None,
    ) -> tuple[str | None, bool, int]:
        url = str(info["url"])
        self._check_download_url(url)
        where = _origin_text(url)
        force_gzip = str(info.get("compressionAlgorithm") or "").upper() == "GZIP"
        deadline = time.monotonic() + self._max_download_seconds
        written = 0

        def count(data: bytes) -> None:
            nonlocal written
            written += len(data)
            sink.write(data)

        # Amazon has served gzip files that were gzipped again: allow exactly one more layer.
        stage = _GunzipStage(_GunzipStage(count, force=False), force=force_gzip)
        try:
            # Accept-Encoding identity + iter_raw: we decide about gunzipping, not httpx.
            with self._http.stream("GET", url, headers={"Accept-Encoding": "identity"}) as resp:
                if resp.status_code in (400, 403):
                    code, message = _s3_error(_read_limited(resp))
                    raise _UrlRejected(resp.status_code, code, message)
                if resp.status_code == 429 or resp.status_code >= 500:
                    code, message = _s3_error(_read_limited(resp))
                    raise AmazonError(
                        "throttled" if resp.status_code == 429 else "server",
                        f"The report download from {where} failed with HTTP {resp.status_code}"
                        f"{f' ({code}: {message})' if code else ''}.",
                        status=resp.status_code,
                        amazon_code=code,
                    )
                if resp.status_code != 200:
                    raise AmazonError(
                        "download",
                        f"The report download from {where} answered HTTP {resp.status_code}.",
                        status=resp.status_code,
                        retryable=False,
                    )
                declared = _charset(resp.headers.get("content-type"))
                expected = _int_or_none(resp.headers.get("content-length"))
                received = 0
                for chunk in resp.iter_raw(chunk_size):
                    received += len(chunk)
                    stage.write(chunk)
                    if should_stop is not None and should_stop():
                        raise DownloadStopped(f"stopped after {received} bytes")
                    if time.monotonic() > deadline:
                        raise AmazonError(
                            "download",
                            f"The report download took longer than "
                            f"{self._max_download_seconds:.0f} s and was abandoned.",
                        )
                if expected is not None and received != expected:
                    raise AmazonError(
                        "download",
                        f"The report download was cut off after {received} of {expected} bytes."
                        if received < expected else
                        f"The report download sent {received} bytes, not the {expected} bytes "
                        "it announced.",
                    )
            stage.finish()
        except _Enough:
            return declared, stage.gunzipped, written
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout) as exc:
            raise AmazonError(
                "download",
                f"The report download from {where} was interrupted after {written} bytes "
                f"({type(exc).__name__}); the partial file was discarded.",
            ) from None
        except httpx.TransportError as exc:
            raise AmazonError(
                "network",
                f"Could not reach the report download host {where} ({type(exc).__name__}).",
            ) from None
        except zlib.error as exc:
            raise AmazonError(
                "download",
                f"The downloaded report is not a complete gzip file ({exc}); "
                f"the download was probably cut off.",
            ) from None
        return declared, stage.gunzipped, written

    def _check_download_url(self, url: str) -> None:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        try:
            port = parts.port
        except ValueError:
            port = -1
        allowed = (
            parts.scheme == "https"
            and host
            and not parts.username
            and port in (None, 443)
            and any(host == h or host.endswith("." + h) for h in self._allowed_hosts)
        )
        if not allowed and self._override_origin is not None:
            allowed = _origin(url) == self._override_origin and not parts.username
        if not allowed:
            raise AmazonError(
                "url_not_allowed",
                f"Refusing to download the report from {_origin_text(url)}: it is not an Amazon "
                f"download host ({', '.join(self._allowed_hosts)}).",
                retryable=False,
            )

    # -- retries and error mapping ---------------------------------------------------------

    def _call(self, operation: str, func: Callable[[], _T]) -> _T:
        """Run one SP-API call with short in-process retries; errors become AmazonError."""

        def mapped() -> _T:
            try:
                return func()
            except Exception as exc:  # mapped below; unknown errors are re-raised untouched
                error = self._map_error(operation, exc)
                if error is None:
                    raise
            if error.kind in ("auth", "forbidden"):
                self._token_client().invalidate()
            raise error from None

        try:
            return self._retrying(operation, mapped)
        except AmazonError as error:
            if error.kind != "forbidden":
                raise
        # A stale or revoked access token also yields 403: try once more with a fresh one.
        return self._retrying(operation, mapped)

    def _retrying(
        self,
        operation: str,
        func: Callable[[], _T],
        *,
        is_transient: Callable[[AmazonError], bool] = lambda exc: exc.retryable,
    ) -> _T:
        """Call ``func``, retrying transient AmazonErrors while the waits stay short."""

        def give_up(state: RetryCallState) -> NoReturn:
            error = _outcome_error(state)
            assert isinstance(error, AmazonError)
            attempts = state.attempt_number
            error.message += f" Gave up after {attempts} attempt{'s' if attempts > 1 else ''}."
            error.args = (error.message,)
            if state.idle_for + state.upcoming_sleep > self._max_retry_wait:
                error.retry_after = state.upcoming_sleep  # wait longer, but not in-process
            raise error

        retrying = Retrying(
            retry=retry_if_exception(
                lambda exc: isinstance(exc, AmazonError) and is_transient(exc)
            ),
            wait=self._wait,
            stop=stop_after_attempt(self._max_retries + 1)
            | _StopBeforeLongWait(self._max_retry_wait),
            sleep=self._sleep,
            before_sleep=lambda state: log.info(
                "%s failed (%s); retrying in %.1f s",
                operation,
                getattr(_outcome_error(state), "kind", "?"),
                state.upcoming_sleep,
            ),
            retry_error_callback=give_up,
        )
        return retrying(func)

    def _wait(self, state: RetryCallState) -> float:
        error = _outcome_error(state)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return max(0.0, retry_after)
        return min(self._max_backoff, self._backoff * (2 ** (state.attempt_number - 1)))

    def _token_client(self) -> _LwaTokenClient:
        return self._api._auth

    def _map_error(self, operation: str, exc: Exception) -> AmazonError | None:
        if isinstance(exc, AuthorizationError):
            return self._map_lwa_error(exc)
        if isinstance(exc, sp_exceptions.SellingApiException):
            status = getattr(exc, "status_code", None) or exc.code
            code = getattr(exc, "amzn_code", None)
            text = self._redact(getattr(exc, "message", None) or "")
            detail = f" ({code}: {text})" if code else (f" ({text})" if text else "")
            retry_after = _retry_after((getattr(exc, "headers", None) or {}).get("Retry-After"))
            if status == 429:
                kind, message = "throttled", f"Amazon throttled {operation} (HTTP 429{detail})."
            elif status >= 500:
                kind = "server"
                message = f"Amazon's {operation} failed with HTTP {status}{detail}."
            elif status == 403:
                kind = "forbidden"
                message = (
                    f"Amazon denied {operation} (HTTP 403{detail}). The SP-API application lacks "
                    "the role needed for the Reports API (All Listings Report), or the seller "
                    "revoked the authorisation and must re-authorise the app."
                )
            elif status == 404:
                kind, message = (
                    "not_found",
                    f"Amazon's {operation} found nothing (HTTP 404{detail}).",
                )
            else:
                kind = "bad_request"
                message = f"Amazon rejected {operation} (HTTP {status}{detail})."
            return AmazonError(
                kind, message, status=status, amazon_code=code, retry_after=retry_after,
                amazon_text=f"HTTP {status}{detail}",
            )
        if isinstance(exc, httpx.TimeoutException):
            return AmazonError(
                "network", f"{operation} timed out talking to Amazon ({type(exc).__name__})."
            )
        if isinstance(exc, httpx.TransportError):
            return AmazonError(
                "network", f"{operation} could not reach Amazon ({type(exc).__name__})."
            )
        return None

    def _map_lwa_error(self, exc: AuthorizationError) -> AmazonError:
        status = exc.status_code
        code = exc.error_code
        text = self._redact(exc.message or "")
        detail = f"{code}: {text}" if code else (text or "no details")
        amazon_text = f"HTTP {status}, {detail}"
        if status == 429:
            return AmazonError(
                "throttled",
                f"Login with Amazon throttled the token request ({detail}).",
                status=status,
                amazon_code=code,
            )
        if status is not None and status >= 500:
            return AmazonError(
                "server",
                f"Login with Amazon failed with HTTP {status} ({detail}).",
                status=status,
                amazon_code=code,
            )
        return AmazonError(
            "auth",
            f"Login with Amazon rejected the credentials (HTTP {status}, {detail}). The LWA "
            "client id / client secret or the seller's refresh token is wrong, or the seller "
            "revoked the authorisation.",
            status=status,
            amazon_code=code,
            retryable=False,
            amazon_text=amazon_text,
        )

    def _redact(self, text: str) -> str:
        for secret in (self._credentials.client_secret, self._credentials.refresh_token):
            if secret:
                text = text.replace(secret, "***")
        return _TOKEN_PATTERN.sub("***", text)

    def close(self) -> None:
        self._http.close()
        self._api.close()
        self._token_client().close()

    def __enter__(self) -> AmazonReportsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        code, endpoint = self.marketplace.code, self._endpoint
        return f"AmazonReportsClient(marketplace={code!r}, endpoint={endpoint!r})"


def _outcome_error(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower().rstrip("."), port or default


def _origin_text(url: str) -> str:
    # Never echo the query string: it carries the pre-signed URL's signature.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" + (
        f":{parts.port}" if _safe_port(parts) else ""
    )


def _safe_port(parts: Any) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None


def _retry_after(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _charset(content_type: str | None) -> str | None:
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return None


def _read_limited(response: httpx.Response) -> bytes:
    body = b""
    for chunk in response.iter_raw(_ERROR_BODY_LIMIT):
        body += chunk
        if len(body) >= _ERROR_BODY_LIMIT:
            break
    return body[:_ERROR_BODY_LIMIT]


def _s3_error(body: bytes) -> tuple[str | None, str | None]:
    text = body.decode("utf-8", "replace")
    code = re.search(r"<Code>([^<]{1,200})</Code>", text)
    message = re.search(r"<Message>([^<]{1,500})</Message>", text)
    return (code.group(1) if code else None), (message.group(1) if message else None)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
