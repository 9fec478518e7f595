"""AmazonReportsClient against the local SP-API emulator: real HTTP, the real sp_api client."""

from __future__ import annotations

import logging
import os
import re
import resource
import socket
import tracemalloc
from datetime import datetime, timedelta, timezone

import pytest
from sp_api.auth import access_token_client

from xsale_amazon_plugin.amazon.client import (
    AmazonError,
    AmazonReportsClient,
    DownloadedDocument,
    DownloadStopped,
    LwaCredentials,
)
from xsale_amazon_plugin.amazon.marketplaces import get_marketplace
from xsale_amazon_plugin.emulator.server import SpApiEmulator

MP = get_marketplace("DE")
DE = MP.marketplace_id
FR = get_marketplace("FR").marketplace_id
CREDS = LwaCredentials(
    client_id="amzn1.application-oa2-client.test-app",
    client_secret="amzn1.oa2-cs.v1.TOP-SECRET-client-secret",
    refresh_token="Atzr|TOP-SECRET-refresh-token-0123456789",
)
LISTINGS = (
    "seller-sku\tasin1\titem-name\tprice\tquantity\n"
    "SKU-1\tB00V7I4DHA\tKaffeebecher «Grün»\t9.99\t3\n"
    "SKU-2\tB00V7I4DHB\tTeekanne\t19.99\t\n"
).encode()


@pytest.fixture
def emu(emulator):
    emulator.reset()
    emulator.add_account(CREDS.client_id, CREDS.client_secret, CREDS.refresh_token)
    # sp_api's token cache is module-global; start each test without cached tokens.
    access_token_client.cache.clear()
    return emulator


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def make_client(emu, sleeps):
    clients: list[AmazonReportsClient] = []

    def make(**options) -> AmazonReportsClient:
        options.setdefault("spapi_endpoint", emu.url)
        options.setdefault("lwa_endpoint", emu.lwa_url)
        options.setdefault("sleep", sleeps.append)
        marketplace = options.pop("marketplace", MP)
        credentials = options.pop("credentials", CREDS)
        client = AmazonReportsClient(marketplace, credentials, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client):
    return make_client()


def _ops(emu: SpApiEmulator, operation: str) -> list[dict]:
    return [r for r in emu.requests if r["operation"] == operation]


def _finished_report(client: AmazonReportsClient) -> dict:
    report_id = client.create_report()
    for _ in range(10):
        report = client.get_report(report_id)
        if report["processingStatus"] in ("DONE", "CANCELLED", "FATAL"):
            return report
    raise AssertionError("report never finished")


def _assert_no_secret(error: AmazonError) -> None:
    for text in (str(error), repr(error), error.message, *map(str, error.args)):
        assert CREDS.client_secret not in text
        assert CREDS.refresh_token not in text
        assert "Atza|" not in text


# -- API flow --------------------------------------------------------------------------------


def test_create_report_body_and_polling_to_done(emu, client, tmp_path):
    emu.set_listings(DE, LISTINGS, polls_until_done=3)
    report_id = client.create_report()
    statuses = [client.get_report(report_id)["processingStatus"] for _ in range(3)]
    assert statuses == ["IN_QUEUE", "IN_PROGRESS", "DONE"]

    (create,) = _ops(emu, "createReport")
    assert create["json"] == {
        "reportType": "GET_MERCHANT_LISTINGS_ALL_DATA",
        "marketplaceIds": [DE],
        "reportOptions": {"custom": "true", "preferredReportDocumentLocale": "en_US"},
    }
    (token,) = _ops(emu, "token")
    assert token["form"]["grant_type"] == "refresh_token"
    assert token["form"]["client_id"] == CREDS.client_id
    for request in emu.requests:
        host, port = request["headers"]["host"].split(":")
        assert (host, int(port)) == ("127.0.0.1", int(emu.url.rsplit(":", 1)[1]))

    report = client.get_report(report_id)
    document = client.download_document(report["reportDocumentId"], str(tmp_path / "r.tsv"))
    assert isinstance(document, DownloadedDocument)
    assert (tmp_path / "r.tsv").read_bytes() == LISTINGS
    assert document.size == len(LISTINGS)
    assert document.compressed is True
    assert document.declared_charset == "utf-8"


def test_create_report_options_can_be_left_out(emu, client):
    client.create_report(custom=False, locale=None)
    assert _ops(emu, "createReport")[0]["json"] == {
        "reportType": "GET_MERCHANT_LISTINGS_ALL_DATA",
        "marketplaceIds": [DE],
    }


def test_environment_cannot_redirect_marketplace_or_credentials(emu, make_client, monkeypatch):
    monkeypatch.setenv("SP_API_DEFAULT_MARKETPLACE", "US")
    monkeypatch.setenv("LWA_APP_ID", "env-app")
    monkeypatch.setenv("LWA_CLIENT_SECRET", "env-secret")
    monkeypatch.setenv("SP_API_REFRESH_TOKEN", "Atzr|env")
    make_client().create_report()
    assert _ops(emu, "createReport")[0]["json"]["marketplaceIds"] == [DE]
    assert _ops(emu, "token")[0]["form"]["client_id"] == CREDS.client_id


def test_cancelled_report(emu, client):
    assert _finished_report(client)["processingStatus"] == "CANCELLED"  # no data
    emu.set_listings(DE, LISTINGS, final_status="CANCELLED")
    report = _finished_report(client)
    assert report["processingStatus"] == "CANCELLED"
    assert "reportDocumentId" not in report


def test_fatal_report_document_is_readable(emu, client):
    message = "Fatal: the report could not be generated. Ünïcode ok.\n" * 200
    emu.set_listings(DE, LISTINGS, final_status="FATAL", fatal_document=message.encode())
    report = _finished_report(client)
    assert report["processingStatus"] == "FATAL"
    text = client.read_fatal_document(report["reportDocumentId"], limit=120)
    assert text == message[:120]
    assert client.read_fatal_document(report["reportDocumentId"], limit=10_000) == message[:10_000]


def test_find_recent_report_picks_newest_matching(emu, client):
    now = datetime.now(timezone.utc)
    emu.set_listings(DE, LISTINGS)
    emu.add_existing_report(DE, created_at=now - timedelta(days=2))  # outside the window
    emu.add_existing_report(DE, created_at=now - timedelta(hours=3))
    newest = emu.add_existing_report(DE, created_at=now - timedelta(hours=1))
    emu.add_existing_report(FR, created_at=now - timedelta(minutes=5))
    emu.add_existing_report([DE, FR], created_at=now - timedelta(minutes=4))
    emu.add_existing_report(DE, created_at=now - timedelta(minutes=3), status="FATAL")
    emu.add_existing_report(DE, created_at=now - timedelta(minutes=2), status="CANCELLED")

    found = client.find_recent_report(now - timedelta(hours=6))
    assert found is not None and found["reportId"] == newest
    (call,) = _ops(emu, "getReports")
    assert call["query"]["reportTypes"] == "GET_MERCHANT_LISTINGS_ALL_DATA"
    assert call["query"]["processingStatuses"] == "DONE"
    assert call["query"]["marketplaceIds"] == DE
    assert call["query"]["createdSince"].endswith("Z")
    assert client.find_recent_report(now - timedelta(minutes=30)) is None


def test_find_recent_report_follows_next_token(emu, client):
    now = datetime.now(timezone.utc)
    newest = emu.add_existing_report(DE, created_at=now - timedelta(minutes=1))
    for minutes in range(2, 130):
        emu.add_existing_report(DE, created_at=now - timedelta(minutes=minutes))
    emu.add_existing_report([DE, FR], created_at=now)
    assert client.find_recent_report(now - timedelta(hours=3))["reportId"] == newest
    calls = _ops(emu, "getReports")
    assert len(calls) == 2
    assert set(calls[1]["query"]) == {"nextToken"}


# -- credentials and authorisation -------------------------------------------------------------


@pytest.mark.parametrize(
    ("credentials", "code"),
    [
        (LwaCredentials(CREDS.client_id, "wrong-secret", CREDS.refresh_token), "invalid_client"),
        (LwaCredentials(CREDS.client_id, CREDS.client_secret, "Atzr|revoked"), "invalid_grant"),
    ],
)
def test_bad_lwa_credentials_raise_auth(emu, make_client, sleeps, credentials, code):
    with pytest.raises(AmazonError) as caught:
        make_client(credentials=credentials).create_report()
    error = caught.value
    assert error.kind == "auth"
    assert error.retryable is False
    assert error.status == 400
    assert error.amazon_code == code
    assert "client id / client secret or the seller's refresh token" in error.message
    _assert_no_secret(error)
    assert "wrong-secret" not in str(error)
    assert sleeps == []
    assert _ops(emu, "createReport") == []


def test_credentials_repr_hides_secrets():
    text = repr(CREDS) + str(CREDS)
    assert CREDS.client_id in text
    assert CREDS.client_secret not in text
    assert CREDS.refresh_token not in text


def test_missing_credentials_fail_fast(emu):
    with pytest.raises(AmazonError) as caught:
        AmazonReportsClient(MP, LwaCredentials(CREDS.client_id, "", CREDS.refresh_token))
    assert caught.value.kind == "auth"


def test_forbidden_mentions_role_and_reauthorisation(emu, client, sleeps):
    emu.configure(forbidden=True)
    with pytest.raises(AmazonError) as caught:
        client.create_report()
    error = caught.value
    assert (error.kind, error.status, error.amazon_code) == ("forbidden", 403, "Unauthorized")
    assert error.retryable is False
    assert "role" in error.message and "re-authorise" in error.message
    _assert_no_secret(error)
    # One retry with a freshly issued token (the cached one could have been revoked).
    assert len(_ops(emu, "token")) == 2
    assert len(_ops(emu, "createReport")) == 2
    assert sleeps == []


def test_token_cache_is_scoped_to_the_lwa_endpoint(emu, client):
    emu.set_listings(DE, LISTINGS)
    client.create_report()
    with SpApiEmulator() as other:
        other.add_account(CREDS.client_id, CREDS.client_secret, CREDS.refresh_token)
        other.set_listings(DE, LISTINGS)
        with AmazonReportsClient(
            MP, CREDS, spapi_endpoint=other.url, lwa_endpoint=other.lwa_url
        ) as second:
            second.create_report()
        assert [r["operation"] for r in other.requests] == ["token", "createReport"]
        issued_here = {r["headers"]["x-amz-access-token"] for r in _ops(emu, "createReport")}
        sent_there = {r["headers"]["x-amz-access-token"] for r in _ops(other, "createReport")}
        assert issued_here.isdisjoint(sent_there)


def test_revoked_cached_token_is_replaced(emu, client):
    emu.set_listings(DE, LISTINGS)
    client.create_report()
    emu.reset()  # the emulator forgets every issued token, like a revocation
    emu.add_account(CREDS.client_id, CREDS.client_secret, CREDS.refresh_token)
    assert client.create_report()
    assert [r["status"] for r in emu.requests] == [403, 200, 202]


def test_tokens_never_reach_logs(emu, client, caplog):
    logger = logging.getLogger("sp_api.base.client")
    previous = logger.level
    logger.setLevel(logging.DEBUG)  # as an application debugging sp_api would
    try:
        with caplog.at_level(logging.DEBUG):
            client.create_report()
    finally:
        logger.setLevel(previous)
    assert any("Request Headers" in r.getMessage() for r in caplog.records)
    text = "\n".join(r.getMessage() for r in caplog.records)
    token = _ops(emu, "createReport")[0]["headers"]["x-amz-access-token"]
    assert token not in text
    assert CREDS.client_secret not in text and CREDS.refresh_token not in text


def test_sp_api_loggers_default_to_warning():
    assert logging.getLogger("sp_api").level == logging.WARNING
    assert logging.getLogger("sp_api.base.client").level == logging.WARNING


# -- throttling and server errors -------------------------------------------------------------


def test_429_is_retried_with_growing_delays(emu, client, sleeps):
    emu.set_listings(DE, LISTINGS)
    report_id = client.create_report()
    emu.inject("getReport", 429, 429, 429)
    assert client.get_report(report_id)["processingStatus"] == "DONE"
    assert sleeps == [1.0, 2.0, 4.0]
    assert [r["status"] for r in _ops(emu, "getReport")] == [429, 429, 429, 200]


def test_retry_after_is_honoured_and_backoff_capped(emu, make_client, sleeps):
    client = make_client(backoff=3.0, max_backoff=5.0, max_retries=6, max_retry_wait=30)
    emu.inject("createReport", 429, retry_after=1.5)
    emu.inject("createReport", 503, 503, 503)
    client.create_report()
    assert sleeps == [1.5, 5.0, 5.0, 5.0]


def test_long_retry_after_is_not_slept_but_handed_to_the_caller(emu, make_client, sleeps):
    """A worker must not sleep through Amazon's long waits: the error says how long to wait."""
    client = make_client(max_retry_wait=8.0)
    emu.inject("createReport", 429, retry_after=600)
    with pytest.raises(AmazonError) as caught:
        client.create_report()
    error = caught.value
    assert (error.kind, error.retryable, error.retry_after) == ("throttled", True, 600.0)
    assert sleeps == []
    assert len(_ops(emu, "createReport")) == 1
    assert client.create_report()  # the injected 429 is used up: the next call goes through


def test_in_process_waits_stay_within_the_budget(emu, make_client, sleeps):
    """A 5xx streak: short retries up to the wait budget, then the caller re-schedules."""
    client = make_client(backoff=1.0, max_backoff=4.0, max_retries=10, max_retry_wait=8.0)
    emu.inject("getReports", *([503] * 20))
    with pytest.raises(AmazonError) as caught:
        client.find_recent_report(datetime.now(timezone.utc) - timedelta(hours=1))
    assert sleeps == [1.0, 2.0, 4.0]  # the next 4 s would pass the 8 s budget
    assert sum(sleeps) <= 8.0
    assert (caught.value.kind, caught.value.retryable) == ("server", True)
    assert caught.value.retry_after == 4.0
    assert "4 attempts" in caught.value.message
    assert len(_ops(emu, "getReports")) == 4


def test_429_storm_gives_up_as_throttled(emu, make_client, sleeps):
    client = make_client(max_retries=3, max_retry_wait=30)
    emu.inject("createReport", *([429] * 10))
    with pytest.raises(AmazonError) as caught:
        client.create_report()
    error = caught.value
    assert (error.kind, error.status, error.amazon_code) == ("throttled", 429, "QuotaExceeded")
    assert error.retryable is True
    assert "4 attempts" in error.message
    assert sleeps == [1.0, 2.0, 4.0]
    assert error.retry_after is None  # out of attempts, not out of patience
    assert len(_ops(emu, "createReport")) == 4


def test_5xx_bursts_are_retried_then_reported_as_server(emu, make_client, sleeps):
    client = make_client(max_retries=4)
    emu.inject("getReports", 500, 503, 500)
    assert client.find_recent_report(datetime.now(timezone.utc) - timedelta(hours=1)) is None
    assert len(sleeps) == 3

    emu.inject("getReports", *([503] * 5))
    with pytest.raises(AmazonError) as caught:
        client.find_recent_report(datetime.now(timezone.utc) - timedelta(hours=1))
    assert (caught.value.kind, caught.value.status) == ("server", 503)
    assert caught.value.retryable is True
    assert caught.value.amazon_code == "ServiceUnavailable"


def test_lwa_server_errors_are_retried(emu, client, sleeps):
    emu.inject("token", 500, 429)
    client.create_report()
    assert sleeps == [1.0, 2.0]
    assert [r["status"] for r in _ops(emu, "token")] == [500, 429, 200]


def test_bad_request_and_not_found(emu, client, sleeps):
    emu.inject("getReport", 400)
    with pytest.raises(AmazonError) as caught:
        client.get_report("1")
    assert (caught.value.kind, caught.value.status, caught.value.retryable) == (
        "bad_request",
        400,
        False,
    )
    assert "InvalidInput" in caught.value.message
    with pytest.raises(AmazonError) as caught:
        client.get_report("does-not-exist")
    assert caught.value.kind == "not_found"
    assert sleeps == []


def test_unreachable_endpoint_is_a_network_error(emu, make_client, sleeps):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    client = make_client(spapi_endpoint=f"http://127.0.0.1:{closed_port}", max_retries=2)
    with pytest.raises(AmazonError) as caught:
        client.create_report()
    assert (caught.value.kind, caught.value.retryable) == ("network", True)
    assert sleeps == [1.0, 2.0]


# -- document download ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        {"gzip": True},
        {"gzip": False},
        {"gzip": True, "double_gzip": True},
        {"gzip": True, "content_encoding_gzip": True},
        {"gzip": False, "content_encoding_gzip": True},
    ],
    ids=["gzip", "plain", "double-gzip", "content-encoding+gzip", "content-encoding-only"],
)
def test_download_variants(emu, client, tmp_path, variant):
    emu.set_listings(DE, LISTINGS, **variant)
    report = _finished_report(client)
    dest = tmp_path / "listings.tsv"
    document = client.download_document(report["reportDocumentId"], str(dest), chunk_size=16)
    assert dest.read_bytes() == LISTINGS
    assert document.size == len(LISTINGS)
    assert document.compressed is (variant["gzip"] or variant.get("content_encoding_gzip", False))
    (download,) = _ops(emu, "download")
    assert download["headers"]["accept-encoding"] == "identity"


@pytest.mark.parametrize("charset", ["Windows-31J", "Cp1252", "utf8", None])
def test_declared_charset_is_passed_through_raw(emu, client, tmp_path, charset):
    content = "seller-sku\titem-name\nA\tカップ\n".encode("cp932")
    emu.set_listings(DE, content, charset=charset)
    report = _finished_report(client)
    document = client.download_document(report["reportDocumentId"], str(tmp_path / "d.tsv"))
    assert document.declared_charset == charset
    assert (tmp_path / "d.tsv").read_bytes() == content


def test_download_sends_no_credentials(emu, client, tmp_path):
    emu.set_listings(DE, LISTINGS)
    report = _finished_report(client)
    client.download_document(report["reportDocumentId"], str(tmp_path / "d.tsv"))
    (download,) = _ops(emu, "download")
    assert download["auth_header_sent"] is False
    assert not {"authorization", "x-amz-access-token", "x-amz-date"} & set(download["headers"])


def test_expired_url_is_refetched(emu, client, tmp_path):
    emu.set_listings(DE, LISTINGS)
    report = _finished_report(client)
    emu.inject("download", 403)
    dest = tmp_path / "d.tsv"
    client.download_document(report["reportDocumentId"], str(dest))
    assert dest.read_bytes() == LISTINGS
    assert len(_ops(emu, "getReportDocument")) == 2
    assert [r["status"] for r in _ops(emu, "download")] == [403, 200]


def test_always_expired_url_gives_up(emu, client, tmp_path):
    emu.set_listings(DE, LISTINGS)
    emu.configure(url_ttl=-1)
    report = _finished_report(client)
    dest = tmp_path / "d.tsv"
    with pytest.raises(AmazonError) as caught:
        client.download_document(report["reportDocumentId"], str(dest))
    assert caught.value.kind == "download"
    assert caught.value.amazon_code == "AccessDenied"
    assert "Request has expired" in caught.value.message
    assert len(_ops(emu, "getReportDocument")) == 4  # first URL + 3 fresh ones
    assert list(tmp_path.iterdir()) == []


def test_s3_5xx_is_retried(emu, client, sleeps, tmp_path):
    emu.set_listings(DE, LISTINGS)
    report = _finished_report(client)
    emu.inject("download", 503, 500)
    client.download_document(report["reportDocumentId"], str(tmp_path / "d.tsv"))
    assert sleeps == [1.0, 2.0]


@pytest.mark.parametrize("gzipped", [True, False])
def test_cut_download_is_retryable_and_leaves_no_file(emu, client, tmp_path, gzipped):
    content = b"".join(b"SKU-%06d\tItem %d\t%d.99\n" % (i, i * 7, i % 97) for i in range(20_000))
    emu.set_listings(DE, content, gzip=gzipped)
    emu.configure(cut_download_after=5_000)
    report = _finished_report(client)
    dest = tmp_path / "d.tsv"
    with pytest.raises(AmazonError) as caught:
        client.download_document(report["reportDocumentId"], str(dest))
    assert (caught.value.kind, caught.value.retryable) == ("download", True)
    assert "interrupted" in caught.value.message or "cut off" in caught.value.message
    assert list(tmp_path.iterdir()) == []


def test_download_stops_when_asked_and_leaves_no_file(emu, client, tmp_path):
    """An import cancelled mid-download: the caller's should_stop ends the transfer at the
    next chunk, long before a throttled download of the whole document would end."""
    content = b"".join(b"SKU-%06d\tItem %d\t%d.99\n" % (i, i * 7, i % 97) for i in range(20_000))
    emu.set_listings(DE, content, gzip=False)
    emu.configure(download_rate=len(content) / 60)  # the whole document: a minute
    report = _finished_report(client)
    asked: list[int] = []

    def should_stop() -> bool:
        asked.append(1)
        return len(asked) >= 2

    with pytest.raises(DownloadStopped):
        client.download_document(report["reportDocumentId"], str(tmp_path / "d.tsv"),
                                 chunk_size=4096, should_stop=should_stop)
    assert len(asked) == 2  # asked after each chunk, stopped at the first True
    assert list(tmp_path.iterdir()) == []
    served = [r for r in emu.requests if r["operation"] == "download"]
    assert served, emu.requests[-3:]


def test_truncated_gzip_is_a_download_error(emu, client, tmp_path):
    content = b"".join(b"SKU-%06d\tItem\t1.00\n" % i for i in range(5_000))
    emu.set_listings(DE, content)
    emu.configure(truncate_gzip=True)
    report = _finished_report(client)
    with pytest.raises(AmazonError) as caught:
        client.download_document(report["reportDocumentId"], str(tmp_path / "d.tsv"))
    assert (caught.value.kind, caught.value.retryable) == ("download", True)
    assert "gzip" in caught.value.message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "https://evil.example.com/report.txt",
        "https://amazonaws.com.evil.example.com/report.txt",
        "https://s3.amazonaws.com@evil.example.com/report.txt",
        "http://tortuga-prod-eu.s3-eu-west-1.amazonaws.com/report.txt",
        "https://tortuga-prod-eu.s3-eu-west-1.amazonaws.com:8443/report.txt",
        "file:///etc/passwd",
    ],
)
def test_download_url_must_be_an_amazon_host(emu, client, tmp_path, url):
    emu.set_listings(DE, LISTINGS)
    emu.configure(document_url=url)
    report = _finished_report(client)
    with pytest.raises(AmazonError) as caught:
        client.download_document(report["reportDocumentId"], str(tmp_path / "d.tsv"))
    assert (caught.value.kind, caught.value.retryable) == ("url_not_allowed", False)
    assert "security-credentials" not in caught.value.message
    assert _ops(emu, "download") == []
    assert list(tmp_path.iterdir()) == []


def test_other_local_port_is_not_allowed(emu, client, tmp_path):
    with SpApiEmulator() as other:
        emu.set_listings(DE, LISTINGS)
        emu.configure(document_url=f"{other.url}/_docs/anything?X-Amz-Signature=x")
        report = _finished_report(client)
        with pytest.raises(AmazonError) as caught:
            client.download_document(report["reportDocumentId"], str(tmp_path / "d.tsv"))
        assert caught.value.kind == "url_not_allowed"
        assert other.requests == []


def test_amazon_hosts_are_allowed(client):
    client._check_download_url("https://tortuga-prod-eu.s3-eu-west-1.amazonaws.com/x?X-Amz-E=1")
    client._check_download_url("https://d34o8swod1owfl.cloudfront.amazon.com/x")


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            match = re.search(rf"^{field}:\s+(\d+) kB", handle.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_peak_rss() -> int:
    """Current RSS in KiB; on Linux also resets the process's peak RSS (VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        current = _proc_status_kib("VmRSS")
        if current is not None:
            return current
    except OSError:
        pass
    # Without clear_refs the baseline is the lifetime peak: a weaker, still valid bound.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak_rss_kib() -> int:
    peak = _proc_status_kib("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@pytest.mark.parametrize("gzipped", [True, False], ids=["gzip", "plain"])
def test_50mb_document_streams_with_flat_memory(emu, client, tmp_path, gzipped):
    block = b"".join(
        b"SKU-%07d\tB0%08d\tSome item name %d\t%d.99\t5\n" % (i, i, i, i % 90)
        for i in range(20_000)
    )
    content = block * (50 * 1024 * 1024 // len(block) + 1)
    emu.set_listings(DE, content, gzip=gzipped)
    report = _finished_report(client)  # the emulator builds the document up front
    dest = tmp_path / "big.tsv"

    rss_before = _reset_peak_rss()
    tracemalloc.start()
    try:
        document = client.download_document(report["reportDocumentId"], str(dest))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    growth_kib = _peak_rss_kib() - rss_before

    assert document.size == len(content) == os.path.getsize(dest)
    assert document.compressed is gzipped
    assert peak < 30 * 1024 * 1024
    assert growth_kib < 30 * 1024
    with open(dest, "rb") as handle:
        assert handle.read(len(block)) == block
