"""The local SP-API emulator speaks HTTP like Amazon (LWA, Reports API, pre-signed S3 URLs)."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from sp_api.auth import access_token_client

from xsale_amazon_plugin.amazon.client import AmazonReportsClient, LwaCredentials
from xsale_amazon_plugin.amazon.marketplaces import get_marketplace
from xsale_amazon_plugin.emulator.server import EmulatorControl, SpApiEmulator

API = "/reports/2021-06-30"
DE = "A1PA6795UKMFR9"
FR = "A13V1IB3VIYZZH"
CLIENT_ID = "amzn1.application-oa2-client.emulator-test"
CLIENT_SECRET = "emulator-client-secret-0123456789"
REFRESH_TOKEN = "Atzr|emulator-refresh-token-0123456789"
LISTINGS = b"seller-sku\titem-name\tprice\nSKU-1\tKaffeebecher\t9.99\n"


@pytest.fixture
def emu(emulator):
    emulator.reset()
    emulator.add_account(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
    return emulator


@pytest.fixture
def http(emu):
    with httpx.Client(base_url=emu.url, timeout=10) as client:
        yield client


def _token(http: httpx.Client, **overrides: str) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH_TOKEN,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    form.update(overrides)
    return http.post("/auth/o2/token", data=form)


@pytest.fixture
def auth(http):
    return {"x-amz-access-token": _token(http).json()["access_token"]}


def _create(http: httpx.Client, auth: dict, marketplace: str = DE) -> str:
    body = {"reportType": "GET_MERCHANT_LISTINGS_ALL_DATA", "marketplaceIds": [marketplace]}
    response = http.post(f"{API}/reports", json=body, headers=auth)
    assert response.status_code == 202
    return response.json()["reportId"]


def _poll_until_final(http: httpx.Client, auth: dict, report_id: str) -> dict:
    for _ in range(10):
        report = http.get(f"{API}/reports/{report_id}", headers=auth).json()
        if report["processingStatus"] in ("DONE", "CANCELLED", "FATAL"):
            return report
    raise AssertionError("report never finished")


def _document(http: httpx.Client, auth: dict) -> tuple[dict, httpx.Response]:
    report = _poll_until_final(http, auth, _create(http, auth))
    info = http.get(f"{API}/documents/{report['reportDocumentId']}", headers=auth).json()
    return info, httpx.get(info["url"], headers={"Accept-Encoding": "identity"})


def test_starts_and_binds_loopback_only():
    with SpApiEmulator() as emu:
        assert emu.url.startswith("http://127.0.0.1:")
        assert emu.lwa_url == emu.url + "/auth/o2/token"
        assert httpx.get(emu.url + "/_emulator/health").json()["status"] == "ok"
    with pytest.raises(ValueError):
        SpApiEmulator(host="0.0.0.0")


def test_lwa_token_issue_and_errors(http):
    ok = _token(http)
    assert ok.status_code == 200
    payload = ok.json()
    assert payload["token_type"] == "bearer"
    assert payload["expires_in"] == 3600
    assert payload["access_token"].startswith("Atza|")

    bad_secret = _token(http, client_secret="nope")
    assert bad_secret.status_code == 400
    assert bad_secret.json()["error"] == "invalid_client"
    bad_grant = _token(http, refresh_token="Atzr|unknown")
    assert bad_grant.status_code == 400
    assert bad_grant.json()["error"] == "invalid_grant"
    assert "error_description" in bad_grant.json()


def test_reports_calls_need_an_issued_token(http):
    for headers in ({}, {"x-amz-access-token": "Atza|forged"}):
        response = http.get(f"{API}/reports/1", headers=headers)
        assert response.status_code == 403
        error = response.json()["errors"][0]
        assert error["code"] == "Unauthorized"
        assert error["message"] == "Access to requested resource is denied."


def test_missing_role_and_forbidden_switch(emu, http, auth):
    emu.add_account("other-app", "other-secret", "Atzr|no-role", roles=())
    no_role = _token(
        http, client_id="other-app", client_secret="other-secret", refresh_token="Atzr|no-role"
    ).json()["access_token"]
    response = http.get(f"{API}/reports/1", headers={"x-amz-access-token": no_role})
    assert response.status_code == 403

    emu.configure(forbidden=True)
    assert http.get(f"{API}/reports/1", headers=auth).status_code == 403


def test_create_report_validates_and_records_body(emu, http, auth):
    two = {"reportType": "GET_MERCHANT_LISTINGS_ALL_DATA", "marketplaceIds": [DE, FR]}
    response = http.post(f"{API}/reports", json=two, headers=auth)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "InvalidInput"

    other_type = {"reportType": "GET_FLAT_FILE_OPEN_LISTINGS_DATA", "marketplaceIds": [DE]}
    assert http.post(f"{API}/reports", json=other_type, headers=auth).status_code == 400

    body = {
        "reportType": "GET_MERCHANT_LISTINGS_ALL_DATA",
        "marketplaceIds": [DE],
        "reportOptions": {"custom": "true", "preferredReportDocumentLocale": "en_US"},
    }
    response = http.post(f"{API}/reports", json=body, headers=auth)
    assert response.status_code == 202
    assert response.json()["reportId"]
    logged = [r for r in emu.requests if r["operation"] == "createReport"][-1]
    assert logged["json"] == body
    assert logged["status"] == 202


def test_status_progression_and_document(emu, http, auth):
    emu.set_listings(DE, LISTINGS, polls_until_done=3)
    report_id = _create(http, auth)
    statuses = [
        http.get(f"{API}/reports/{report_id}", headers=auth).json()["processingStatus"]
        for _ in range(4)
    ]
    assert statuses == ["IN_QUEUE", "IN_PROGRESS", "DONE", "DONE"]
    report = http.get(f"{API}/reports/{report_id}", headers=auth).json()
    assert report["marketplaceIds"] == [DE]
    assert report["reportType"] == "GET_MERCHANT_LISTINGS_ALL_DATA"
    info = http.get(f"{API}/documents/{report['reportDocumentId']}", headers=auth).json()
    assert info["compressionAlgorithm"] == "GZIP"
    assert "X-Amz-Expires=300" in info["url"] and "X-Amz-Signature=" in info["url"]
    download = httpx.get(info["url"])  # no auth header at all
    assert download.status_code == 200
    assert download.headers["content-type"] == "text/plain; charset=utf-8"
    assert gzip.decompress(download.content) == LISTINGS
    assert [r["auth_header_sent"] for r in emu.requests if r["operation"] == "download"] == [False]


def test_cancelled_without_data_and_stuck(emu, http, auth):
    assert _poll_until_final(http, auth, _create(http, auth))["processingStatus"] == "CANCELLED"

    emu.set_listings(DE, LISTINGS)
    emu.configure(stuck_in_progress=True)
    report_id = _create(http, auth)
    for _ in range(3):
        report = http.get(f"{API}/reports/{report_id}", headers=auth).json()
        assert report["processingStatus"] == "IN_PROGRESS"
        assert "reportDocumentId" not in report


def test_fatal_with_document(emu, http, auth):
    emu.set_listings(DE, LISTINGS, final_status="FATAL", fatal_document=b"Report failed.")
    report = _poll_until_final(http, auth, _create(http, auth))
    assert report["processingStatus"] == "FATAL"
    info = http.get(f"{API}/documents/{report['reportDocumentId']}", headers=auth).json()
    assert gzip.decompress(httpx.get(info["url"]).content) == b"Report failed."


def test_get_reports_filters_sorts_and_pages(emu, http, auth):
    now = datetime.now(timezone.utc)
    newest = emu.add_existing_report(DE, created_at=now - timedelta(minutes=5))
    older = emu.add_existing_report(DE, created_at=now - timedelta(hours=2))
    emu.add_existing_report(DE, created_at=now - timedelta(days=3))
    emu.add_existing_report(FR, created_at=now - timedelta(minutes=1))
    emu.add_existing_report(DE, created_at=now - timedelta(minutes=2), status="FATAL")
    params = {
        "reportTypes": "GET_MERCHANT_LISTINGS_ALL_DATA",
        "processingStatuses": "DONE",
        "marketplaceIds": DE,
        "createdSince": (now - timedelta(days=1)).isoformat(),
        "pageSize": "1",
    }
    first = http.get(f"{API}/reports", params=params, headers=auth).json()
    assert [r["reportId"] for r in first["reports"]] == [newest]
    bad = http.get(
        f"{API}/reports", params={"nextToken": first["nextToken"], "pageSize": 5}, headers=auth
    )
    assert bad.status_code == 400
    second = http.get(f"{API}/reports", params={"nextToken": first["nextToken"]}, headers=auth)
    assert [r["reportId"] for r in second.json()["reports"]] == [older]
    assert "nextToken" not in second.json()
    assert http.get(f"{API}/reports", params={"pageSize": 5}, headers=auth).status_code == 400


def test_presigned_url_expires_and_is_signed(emu, http, auth):
    emu.set_listings(DE, LISTINGS, gzip=False, charset=None)
    emu.configure(url_ttl=0.3)
    info, first = _document(http, auth)
    assert first.status_code == 200
    assert first.headers["content-type"] == "text/plain"
    assert first.content == LISTINGS
    assert "compressionAlgorithm" not in info
    time.sleep(0.4)
    expired = httpx.get(info["url"])
    assert expired.status_code == 403
    assert b"<Code>AccessDenied</Code>" in expired.content
    assert b"Request has expired" in expired.content
    tampered = httpx.get(info["url"].replace("X-Amz-Signature=", "X-Amz-Signature=0"))
    assert tampered.status_code == 403
    assert b"SignatureDoesNotMatch" in tampered.content


def test_download_variants(emu, http, auth):
    emu.set_listings(DE, LISTINGS, double_gzip=True, charset="Windows-31J")
    info, response = _document(http, auth)
    assert info["compressionAlgorithm"] == "GZIP"
    assert response.headers["content-type"] == "text/plain; charset=Windows-31J"
    assert gzip.decompress(gzip.decompress(response.content)) == LISTINGS

    emu.set_listings(DE, LISTINGS, content_encoding_gzip=True)
    _info, response = _document(http, auth)
    assert response.headers["content-encoding"] == "gzip"
    # The 2023 incident: HTTP libraries decode Content-Encoding themselves, so a client that
    # then gunzips because of compressionAlgorithm=GZIP fails.
    assert response.content == LISTINGS
    with httpx.stream("GET", _info["url"]) as raw:
        assert gzip.decompress(b"".join(raw.iter_raw())) == LISTINGS

    emu.set_listings(DE, LISTINGS * 100)
    emu.configure(truncate_gzip=True)
    _info, response = _document(http, auth)
    with pytest.raises((EOFError, OSError)):
        gzip.decompress(response.content)

    emu.configure(cut_download_after=10)
    with pytest.raises(httpx.RemoteProtocolError):
        _document(http, auth)


def test_injected_errors_look_like_amazon(emu, http, auth):
    emu.inject("getReport", 429, 503, retry_after=3)
    emu.inject("token", 500)
    emu.inject("download", 403)
    throttled = http.get(f"{API}/reports/1", headers=auth)
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "3"
    assert throttled.json()["errors"][0]["code"] == "QuotaExceeded"
    unavailable = http.get(f"{API}/reports/1", headers=auth)
    assert unavailable.status_code == 503
    assert set(unavailable.json()["errors"][0]) == {"code", "message", "details"}
    assert http.get(f"{API}/reports/1", headers=auth).status_code == 404
    assert _token(http).status_code == 500
    emu.set_listings(DE, LISTINGS)
    _info, response = _document(http, auth)
    assert response.status_code == 403 and b"Request has expired" in response.content
    assert http.get(f"{API}/nowhere", headers=auth).status_code == 404


def test_latency_is_applied(emu, http, auth):
    emu.configure(latency=0.2)
    started = time.monotonic()
    http.get(f"{API}/reports/1", headers=auth)
    assert time.monotonic() - started >= 0.2


def test_request_log_records_headers_and_query(emu, http, auth):
    emu.clear_requests()
    http.get(
        f"{API}/reports", params={"reportTypes": "GET_MERCHANT_LISTINGS_ALL_DATA"}, headers=auth
    )
    (entry,) = emu.requests
    assert entry["method"] == "GET"
    assert entry["path"] == f"{API}/reports"
    assert entry["query"] == {"reportTypes": "GET_MERCHANT_LISTINGS_ALL_DATA"}
    assert entry["headers"]["x-amz-access-token"] == auth["x-amz-access-token"]
    assert entry["status"] == 200


def test_control_api_mirrors_python_methods(emulator):
    emulator.reset()
    with EmulatorControl(emulator.url) as control:
        control.wait_until_ready()
        control.add_account("ctl-app", "ctl-secret", "Atzr|ctl")
        control.set_listings(
            FR, "sku\tnom-produit\nA\tcafé\n".encode("cp1252"), charset="Cp1252", gzip=False
        )
        existing = control.add_existing_report(
            FR, created_at=datetime.now(timezone.utc) - timedelta(minutes=1)
        )
        control.inject("getReport", 503)
        control.configure(latency=0.0, url_ttl=60)
        assert control.lwa_url == emulator.lwa_url

        access_token_client.cache.clear()
        client = AmazonReportsClient(
            get_marketplace("FR"),
            LwaCredentials("ctl-app", "ctl-secret", "Atzr|ctl"),
            spapi_endpoint=control.url,
            lwa_endpoint=control.lwa_url,
            sleep=lambda _seconds: None,
        )
        try:
            found = client.find_recent_report(datetime.now(timezone.utc) - timedelta(hours=1))
            assert found is not None and found["reportId"] == existing
            report = client.get_report(existing)  # first answer is the injected 503
            assert report["processingStatus"] == "DONE"
        finally:
            client.close()

        log = control.requests
        assert [r["status"] for r in log if r["operation"] == "getReport"] == [503, 200]
        with pytest.raises(RuntimeError):
            control.inject("noSuchOperation", 500)
        control.clear_requests()
        assert control.requests == []
        control.reset()
    assert emulator.requests == []
    assert httpx.post(emulator.lwa_url, data={"grant_type": "refresh_token"}).status_code == 400


def test_module_entry_point_runs_in_foreground():
    root = Path(__file__).resolve().parents[1]
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xsale_amazon_plugin.emulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--account",
            "cli-app:cli-secret:Atzr|cli",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        url = line.strip().rsplit(" ", 1)[1]
        with EmulatorControl(url) as control:
            control.wait_until_ready()
            control.set_listings(DE, LISTINGS)
            access_token_client.cache.clear()
            client = AmazonReportsClient(
                get_marketplace("DE"),
                LwaCredentials("cli-app", "cli-secret", "Atzr|cli"),
                spapi_endpoint=url,
                lwa_endpoint=control.lwa_url,
            )
            try:
                report_id = client.create_report()
                assert client.get_report(report_id)["processingStatus"] == "DONE"
            finally:
                client.close()
            assert [r["operation"] for r in control.requests] == [
                "token",
                "createReport",
                "getReport",
            ]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
