"""Fuzz campaign over parser + importer end to end (``ReportReader`` → ``stage`` → ``apply``).

Runs on a SQLite file like jobs.py drives the importer. Two properties:

* structured reports (shuffled/missing headers, ragged rows, huge fields, NULs, invalid prices,
  duplicate SKUs, SKUs differing by case or surrounding whitespace, every channel): the offers
  table afterwards equals the set computed independently from the generated rows, the counts
  add up, the invalid lines are named, earlier links are untouched and the missing SKUs are
  removed;
* hostile bytes (random bytes, byte flips, truncation, wrong encodings, broken headers): a
  ``ReportFormatError`` changes nothing; otherwise the import is consistent with the rows read;
* damaged reports never remove offers silently: through the same checks as the import job
  (invalid-line share, removal guard), a damaged report either fails or is held with nothing
  changed, or it removes at most the guard's share of the live offers - and only offers no line
  of the report names.

Invalid lines whose SKU can be read keep their offers (neither updated nor removed).

``XSALE_FUZZ_IMPORTER_EXAMPLES`` sets the examples per property (default 1500). Long campaign::

    XSALE_FUZZ_IMPORTER_EXAMPLES=50000 XSALE_FUZZ_EXAMPLES=20000 \\
        /work/venv/bin/pytest -q tests/test_importer_fuzz.py tests/test_report_fuzz.py
"""

from __future__ import annotations

import dataclasses
import os
import random
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xsale_amazon_plugin.amazon.report_parser import (
    CANONICAL_COLUMNS,
    InvalidRow,
    OfferRow,
    ReportFormatError,
    ReportReader,
)
from xsale_amazon_plugin.importing.report_checks import ReportRejected, check_invalid_share
from xsale_amazon_plugin.importing.writer import OfferWriter, RemovalLimitExceeded

from .hostapp import Host, make_host

EXAMPLES = int(os.environ.get("XSALE_FUZZ_IMPORTER_EXAMPLES", "1500"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
KEEP = 50
REMOVAL_GUARD = 0.2
MAX_INVALID_SHARE = 0.05

SKUS = ("A", "a", " A", "A ", "B-1", "b-1", "C x", "C  x", "Ü", "ü", "sku\u00a0", "\u3000J",
        "D'1", '"E"', "F\\", "G%_", "<h>")
CHANNELS = ("DEFAULT", "AMAZON_EU", "afn", "MFN", "merchant", " amazon_de ", "", "WEIRD")
NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\r\n\x00"),
                max_size=30)
HEADERS = {"sku": "seller-sku", "name": "item-name", "price": "price", "quantity": "quantity",
           "asin": "asin1", "channel": "fulfillment-channel", "status": "status",
           "extra": "item-description"}


@dataclass
class Line:
    kind: str  # ok, ragged, nul, huge, empty_sku, long_sku, blank
    sku: str = "A"
    name: str = ""
    price: str = ""
    quantity: str = ""
    asin: str = ""
    channel: str = ""
    status: str = ""
    extra: str = ""


lines = st.builds(
    Line,
    kind=st.sampled_from(("ok",) * 12 + ("ragged", "nul", "huge", "empty_sku", "long_sku",
                                          "blank")),
    sku=st.sampled_from(SKUS),
    name=NAMES,
    price=st.sampled_from(("", "0", "12.34", "9.5", "1000", "abc", "1,2,3", "-3")),
    quantity=st.sampled_from(("", "0", "7", "12", "x", "1.5")),
    asin=st.sampled_from(("", "B000000001", "b00000000x", "B" * 21)),
    channel=st.sampled_from(CHANNELS),
    status=st.sampled_from(("Active", "Inactive", "", "aktiv", "Weird")),
    extra=NAMES,
)
reports = st.fixed_dictionaries({
    "lines": st.lists(lines, max_size=25),
    "columns": st.permutations(list(HEADERS)),
    "drop_channel": st.booleans(),
    "drop_extra": st.booleans(),
    "account_type": st.sampled_from(("FBM", "FBA")),
    "crlf": st.booleans(),
    "previous": st.lists(st.tuples(st.sampled_from([s.strip() for s in SKUS]), st.booleans(),
                                   st.booleans()), max_size=8),
})


# ----------------------------------------------------------------------------- the host


@pytest.fixture(scope="module")
def fuzz_host(tmp_path_factory: Any) -> Any:
    path = tmp_path_factory.mktemp("importer-fuzz") / "fuzz.sqlite"
    host = make_host(f"sqlite:///{path}")
    ids = {key: host.add_integration("DE", key, name=key) for key in ("FBM", "FBA")}
    (product,) = host.add_products([{"sku": "P", "ean": "1", "name": "P"}])
    with host.app.app_context():
        yield host, ids, product, path.parent
        host.db.session.remove()
        for engine in host.db.engines.values():
            engine.dispose()


def _reset(host: Host, integration_id: int, product: Any,
           previous: list[tuple[str, bool, bool]]) -> int:
    """Offers of the previous import (some removed, some linked) and a fresh run; its id."""
    m, engine = host.models, host.db.engine
    offer, link = m.AmazonOffer.__table__, m.OfferProductLink.__table__
    run = m.ImportRun.__table__
    with engine.begin() as conn:
        for table in (link, offer, m.import_row, run):
            conn.execute(table.delete())
        seen = set()
        for sku, removed, linked in previous:
            if sku in seen:
                continue
            seen.add(sku)
            oid = conn.execute(offer.insert().values(
                integration_id=integration_id, seller_sku=sku, name="old", price=Decimal("1.00"),
                removed_at=sa.func.current_timestamp() if removed else None,
                first_seen_at=sa.func.current_timestamp(),
                last_seen_at=sa.func.current_timestamp())).inserted_primary_key[0]
            if linked:
                conn.execute(link.insert().values(offer_id=oid, product_id=product,
                                                  method="manual",
                                                  created_at=sa.func.current_timestamp()))
        return conn.execute(run.insert().values(
            integration_id=integration_id, status="processing", stage="parsing", trigger="api",
            created_at=sa.func.current_timestamp(), report_reused=False, poll_count=0,
            rows_done=0, count_read=0, count_created=0, count_updated=0, count_unchanged=0,
            count_removed=0, count_restored=0, count_skipped_channel=0, count_invalid=0,
            count_duplicate=0, count_without_asin=0, retries=0)).inserted_primary_key[0]


def _state(host: Host, integration_id: int) -> dict[str, Any]:
    m = host.models
    offer, link = m.AmazonOffer.__table__, m.OfferProductLink.__table__
    with host.db.engine.connect() as conn:
        offers = {r.seller_sku: r for r in conn.execute(
            sa.select(offer).where(offer.c.integration_id == integration_id))}
        links = sorted(tuple(r) for r in conn.execute(sa.select(link)))
        staged = conn.execute(sa.select(sa.func.count()).select_from(m.import_row)).scalar_one()
    return {"offers": offers, "links": links, "staged": staged}


def _import(host: Host, path: Path, run_id: int, integration_id: int, account_type: str,
            declared: str | None = "utf-8", default: str = "utf-8", *,
            guarded: bool = False) -> tuple[Any, Any, list]:
    """What the import job does: read, stage, (check,) apply in one transaction.

    Raises ReportFormatError; with ``guarded`` also ReportRejected (too many invalid lines)
    and RemovalLimitExceeded (after rolling the apply back), like the job with its defaults.
    """
    reader = ReportReader(path, declared_charset=declared, default_encoding=default)
    rows: list[OfferRow | InvalidRow] = []

    def recorded() -> Any:
        for row in reader.rows():
            rows.append(row)
            yield row

    importer = OfferWriter(host.models, host.db.engine, run_id=run_id,
                             integration_id=integration_id, account_type=account_type,
                             currency="EUR", invalid_lines_kept=KEEP)
    importer.clear_staging()
    stage = importer.stage(recorded(), has_channel_column="fulfillment-channel" in reader.columns,
                           batch_size=7)
    if guarded:
        check_invalid_share(stage, MAX_INVALID_SHARE)
    with host.db.engine.begin() as conn:
        applied = importer.apply(conn, max_removed_share=REMOVAL_GUARD if guarded else None)
    return stage, applied, rows


# ----------------------------------------------------------------------------- the spec


def _is_fba(channel: str | None, quantity: int | None) -> bool | None:
    """Channel rule of the spec: None = another channel (skipped)."""
    ch = (channel or "").upper()
    if not ch:
        return quantity is None  # no channel: Amazon leaves quantity blank on FBA rows
    if ch.startswith(("AMAZON", "AFN")):
        return True
    if ch in ("DEFAULT", "MFN", "MERCHANT"):
        return False
    return None


def _render(report: dict[str, Any]) -> tuple[bytes, list[str], list[str]]:
    columns = [c for c in report["columns"]
               if not (c == "channel" and report["drop_channel"])
               and not (c == "extra" and report["drop_extra"])]
    out = ["\t".join(HEADERS[c] for c in columns)]
    for line in report["lines"]:
        values = {c: getattr(line, c) for c in HEADERS}
        if line.kind == "blank":
            out.append(" " if line.name else "")
            continue
        if line.kind == "nul":
            values["name"] = line.name + "\x00x"
        elif line.kind == "huge":
            values["name"] = "h" * 4001 + line.name
        elif line.kind == "empty_sku":
            values["sku"] = " "
        elif line.kind == "long_sku":
            values["sku"] = "S" * 201
        fields = [values[c] for c in columns]
        if line.kind == "ragged":
            fields = fields[:2]
        out.append("\t".join(fields))
    newline = "\r\n" if report["crlf"] else "\n"
    return (newline.join(out) + newline).encode("utf-8"), columns, out[1:]


@dataclass
class Expected:
    read: int = 0
    invalid: int = 0
    skipped: int = 0
    staged: int = 0
    invalid_lines: list[int] | None = None
    offers: dict[str, dict[str, Any]] | None = None
    #: SKUs of invalid lines that can still be read (their offers are kept).
    kept: set[str] = dataclasses.field(default_factory=set)


def _expect(report: dict[str, Any], columns: list[str], rendered: list[str]) -> Expected:
    """The outcome computed from the generated rows, without the parser or the importer."""
    exp = Expected(invalid_lines=[], offers={})
    has_channel = "channel" in columns
    for number, (line, text) in enumerate(zip(report["lines"], rendered, strict=True), start=2):
        if not text.strip():  # blank or whitespace-only (e.g. a ragged "\t"): skipped
            continue
        exp.read += 1
        price_ok = line.price in ("", "0", "12.34", "9.5", "1000")
        qty_ok = line.quantity in ("", "0", "7", "12")
        if line.kind != "ok" or not line.sku.strip() or not price_ok or not qty_ok:
            exp.invalid += 1
            exp.invalid_lines.append(number)
            sku_at = columns.index("sku")
            readable = {
                "ok": True,  # an invalid price or quantity: the SKU was read first
                "huge": True,
                "nul": sku_at < len(columns) - 1,  # a last field may be cut: not evidence
                "ragged": sku_at == 0,  # only the first of the two fields is complete
            }.get(line.kind, False)
            if readable and line.sku.strip():
                exp.kept.add(line.sku.strip())
            continue
        quantity = int(line.quantity) if line.quantity else None
        channel = (line.channel.strip().upper() or None) if has_channel else None
        fba = _is_fba(channel, quantity)
        if fba is None or fba != (report["account_type"] == "FBA"):
            exp.skipped += 1
            continue
        if len(line.asin) > 20:
            exp.invalid += 1
            exp.invalid_lines.append(number)
            exp.kept.add(line.sku.strip())
            continue
        exp.staged += 1
        sku = line.sku.strip()
        if sku not in exp.offers:  # first occurrence wins; case-sensitive
            exp.offers[sku] = {
                "name": line.name or None,
                "price": Decimal(line.price) if line.price else None,
                "quantity": quantity,
                "asin": line.asin.upper() or None,
                "fulfillment_channel": channel,
            }
    return exp


# ----------------------------------------------------------------------------- properties


@FUZZ
@given(report=reports)
def test_structured_reports_import_exactly_the_expected_offers(fuzz_host, report):
    host, ids, product, workdir = fuzz_host
    integration_id = ids[report["account_type"]]
    run_id = _reset(host, integration_id, product, report["previous"])
    before = _state(host, integration_id)
    content, columns, rendered = _render(report)
    path = workdir / f"{uuid.uuid4().hex}.tsv"
    path.write_bytes(content)
    try:
        stage, applied, _rows = _import(host, path, run_id, integration_id,
                                        report["account_type"])
    finally:
        path.unlink()
    exp = _expect(report, columns, rendered)
    after = _state(host, integration_id)

    assert (stage.read, stage.staged, stage.skipped_channel, stage.invalid) == (
        exp.read, exp.staged, exp.skipped, exp.invalid)
    assert stage.read == stage.staged + stage.skipped_channel + stage.invalid
    assert [i["line"] for i in stage.invalid_lines] == exp.invalid_lines[:KEEP]
    assert all(i["reason"] for i in stage.invalid_lines)
    assert all(i["column"] in (None, *CANONICAL_COLUMNS) for i in stage.invalid_lines)
    assert applied.duplicate == exp.staged - len(exp.offers)
    assert applied.created + applied.updated + applied.unchanged == stage.staged - applied.duplicate

    previous = before["offers"]
    kept = {s for s, r in previous.items() if r.removed_at is None and s in exp.kept
            and s not in exp.offers}
    active = {sku: r for sku, r in after["offers"].items() if r.removed_at is None}
    assert set(active) == set(exp.offers) | kept
    assert applied.kept == len(kept)
    for sku in kept:  # neither updated nor removed
        assert tuple(after["offers"][sku]) == tuple(previous[sku])
    for sku, want in exp.offers.items():
        row = active[sku]
        got = {"name": row.name, "price": None if row.price is None else Decimal(row.price),
               "quantity": row.quantity, "asin": row.asin,
               "fulfillment_channel": row.fulfillment_channel}
        assert got == want, sku
    assert applied.created == len(set(exp.offers) - set(previous))
    assert applied.updated + applied.unchanged == len(set(exp.offers) & set(previous))
    assert applied.restored == len({s for s in exp.offers if s in previous
                                    and previous[s].removed_at is not None})
    missing = {s for s, r in previous.items() if r.removed_at is None and s not in exp.offers
               and s not in exp.kept}
    assert applied.removed == len(missing)
    assert all(after["offers"][s].removed_at is not None for s in missing)
    assert set(after["offers"]) == set(previous) | set(exp.offers)  # nothing deleted
    assert after["links"] == before["links"]
    assert after["staged"] == 0


def _mutate(content: bytes, rnd: random.Random, how: str) -> tuple[bytes, str | None]:
    if how == "random":
        return rnd.randbytes(rnd.randrange(0, 400)), rnd.choice((None, "utf-8", "Cp1252"))
    if how == "flip" and content:
        data = bytearray(content)
        for _ in range(rnd.randrange(1, 8)):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        return bytes(data), "utf-8"
    if how == "insert":
        pos = rnd.randrange(len(content) + 1)
        junk = rnd.choice((b"\x00", b"\xff\xfe", b"\t\t\t", b"\r", b"\n\n", b"\xc3", b"\x80"))
        return content[:pos] + junk + content[pos:], "utf-8"
    if how == "truncate":
        return content[: rnd.randrange(len(content) + 1)], "utf-8"
    if how == "utf16":
        return content.decode("utf-8").encode("utf-16"), "utf-8"
    if how == "cp1252_as_utf8":
        text = content.decode("utf-8").encode("cp1252", "replace")
        return text, "utf-8"
    if how == "utf8_as_sjis":
        return content, "Shift_JIS"
    if how == "no_header":
        return content.split(b"\n", 1)[-1], "utf-8"
    if how == "bom":
        return b"\xef\xbb\xbf" + content, rnd.choice((None, "Cp1252"))
    return content, "bogus-charset"


@FUZZ
@given(report=reports, seed=st.integers(0, 2**32 - 1),
       how=st.sampled_from(("random", "flip", "insert", "truncate", "utf16", "cp1252_as_utf8",
                            "utf8_as_sjis", "no_header", "bom", "bogus")))
def test_hostile_bytes_fail_cleanly_or_import_consistently(fuzz_host, report, seed, how):
    host, ids, product, workdir = fuzz_host
    rnd = random.Random(seed)
    integration_id = ids[report["account_type"]]
    run_id = _reset(host, integration_id, product, report["previous"])
    before = _state(host, integration_id)
    content, declared = _mutate(_render(report)[0], rnd, how)
    path = workdir / f"{uuid.uuid4().hex}.tsv"
    path.write_bytes(content)
    try:
        try:
            stage, applied, rows = _import(host, path, run_id, integration_id,
                                           report["account_type"], declared=declared,
                                           default=rnd.choice(("utf-8", "cp1252", "cp932")))
        except ReportFormatError as exc:
            assert exc.code in ("empty_report", "unknown_header", "missing_asin_column",
                                "undecodable", "truncated"), exc.code
            assert exc.message
            assert _state(host, integration_id) == before  # nothing changed
            return
    finally:
        path.unlink()
    after = _state(host, integration_id)
    invalid = [r for r in rows if isinstance(r, InvalidRow)]
    offers = [r for r in rows if isinstance(r, OfferRow)]
    assert stage.read == len(rows) == stage.staged + stage.skipped_channel + stage.invalid
    for row in invalid:  # a clear error naming the line (and the column when known)
        assert row.line >= 1 and row.reason
        assert row.column in (None, *CANONICAL_COLUMNS)
    expected: dict[str, OfferRow] = {}
    kept_skus = {r.seller_sku for r in invalid if r.seller_sku is not None}
    staged = 0
    for row in offers:
        assert row.seller_sku == row.seller_sku.strip() and row.seller_sku
        assert "\x00" not in "".join(str(v) for v in dataclasses.astuple(row) if v is not None)
        fba = _is_fba(row.fulfillment_channel, row.quantity)
        if fba is None or fba != (report["account_type"] == "FBA"):
            continue
        if any(v is not None and len(v) > limit for v, limit in (
                (row.asin, 20), (row.listing_id, 40), (row.fulfillment_channel, 40),
                (row.status, 40), (row.product_id, 40), (row.product_id_type, 10))):
            kept_skus.add(row.seller_sku)
            continue
        if (row.price is not None and abs(row.price) >= 10**12) or (
                row.quantity is not None and not -(2**31) < row.quantity < 2**31):
            kept_skus.add(row.seller_sku)
            continue
        staged += 1
        expected.setdefault(row.seller_sku, row)
    assert stage.staged == staged
    assert applied.created + applied.updated + applied.unchanged == staged - applied.duplicate
    active = {s: r for s, r in after["offers"].items() if r.removed_at is None}
    kept = {s for s, r in before["offers"].items() if r.removed_at is None and s in kept_skus
            and s not in expected}
    assert set(active) == set(expected) | kept
    assert applied.kept == len(kept)
    for sku, row in expected.items():
        assert active[sku].name == row.name and active[sku].quantity == row.quantity
    assert after["links"] == before["links"]
    missing = {s for s, r in before["offers"].items() if r.removed_at is None
               and s not in expected and s not in kept_skus}
    assert applied.removed == len(missing)


def _named_skus(content: bytes, sku_at: int) -> set[str]:
    """The SKU column of every line of the file, decoded leniently in every likely codec."""
    names = set()
    for line in content.splitlines()[1:]:
        fields = line.split(b"\t")
        if len(fields) > sku_at:
            for codec in ("utf-8", "cp1252", "cp932", "latin-1"):
                names.add(fields[sku_at].decode(codec, "ignore").strip())
    return names


@FUZZ
@given(report=reports, seed=st.integers(0, 2**32 - 1),
       how=st.sampled_from(("random", "flip", "insert", "truncate", "utf16", "cp1252_as_utf8",
                            "utf8_as_sjis", "no_header", "bom", "bogus")),
       live=st.integers(0, 30))
def test_damaged_reports_never_remove_offers_silently(fuzz_host, report, seed, how, live):
    """With the job's checks, a damaged report fails or is held (nothing changed), or it
    removes at most REMOVAL_GUARD of the live offers, each of them named by no line at all."""
    host, ids, product, workdir = fuzz_host
    rnd = random.Random(seed)
    integration_id = ids[report["account_type"]]
    previous = list(report["previous"]) + [(f"LIVE-{i}", False, i % 4 == 0) for i in range(live)]
    run_id = _reset(host, integration_id, product, previous)
    before = _state(host, integration_id)
    rendered, columns, _lines = _render(report)
    content, declared = _mutate(rendered, rnd, how)
    path = workdir / f"{uuid.uuid4().hex}.tsv"
    path.write_bytes(content)
    try:
        stage, applied, _rows = _import(host, path, run_id, integration_id,
                                        report["account_type"], declared=declared,
                                        default=rnd.choice(("utf-8", "cp1252", "cp932")),
                                        guarded=True)
    except (ReportFormatError, ReportRejected, RemovalLimitExceeded):
        after = _state(host, integration_id)
        assert (after["offers"], after["links"]) == (before["offers"], before["links"])
        return
    finally:
        path.unlink()
    live_before = {s for s, r in before["offers"].items() if r.removed_at is None}
    after = _state(host, integration_id)
    removed = {s for s in live_before if after["offers"][s].removed_at is not None}
    assert applied.live_before == len(live_before)
    assert len(removed) == applied.removed <= REMOVAL_GUARD * len(live_before)
    assert stage.invalid <= MAX_INVALID_SHARE * stage.read and stage.invalid < max(stage.read, 1)
    if not stage.invalid:  # (invalid lines are named on the run: not silent)
        assert not removed & _named_skus(content, columns.index("sku")), removed
    assert after["links"] == before["links"]
