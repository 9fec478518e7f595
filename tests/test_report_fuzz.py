"""Property tests: whatever bytes arrive, the reader fails cleanly or yields well-formed rows.

``XSALE_FUZZ_EXAMPLES`` sets the number of examples per test (default 2000).
"""

from __future__ import annotations

import os
import random
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xsale_amazon_plugin.amazon.report_parser import (
    CANONICAL_COLUMNS,
    MAX_FIELD_LENGTH,
    MAX_SKU_LENGTH,
    InvalidRow,
    OfferRow,
    ReportFormatError,
    ReportReader,
)
from xsale_amazon_plugin.emulator.report_builder import (
    DEFAULT_ENCODING,
    FAMILIES,
    FAMILY_MARKETPLACE,
    HEADERS,
    US_HEADER_LINE,
    demo_listings,
    render_report,
)

EXAMPLES = int(os.environ.get("XSALE_FUZZ_EXAMPLES", "2000"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ERROR_CODES = {"empty_report", "unknown_header", "missing_asin_column", "undecodable",
               "truncated"}
NO_ASIN_FAMILIES = {"fr", "jp"}

declared_charsets = st.sampled_from(
    [None, "utf8", "UTF-8", "Cp1252", "Windows-31J", "ISO-8859-1", "Shift_JIS", "bogus", ""]
)
default_encodings = st.sampled_from(["utf-8", "cp1252", "cp932", "latin-1"])
families = st.sampled_from(FAMILIES)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _check(path: Path, declared: str | None, default: str, **kwargs) -> list | None:
    """Assert the reader's contract on ``path``; return the rows or None when rejected."""
    try:
        reader = ReportReader(path, declared_charset=declared, default_encoding=default, **kwargs)
    except ReportFormatError as exc:
        assert exc.code in ERROR_CODES
        assert isinstance(exc.message, str) and exc.message.strip()
        return None
    assert reader.encoding
    assert "seller-sku" in reader.columns
    rows = list(reader.rows())
    physical_lines = path.read_bytes().count(b"\n") + 1
    previous = 1
    for row in rows:
        assert type(row) in (OfferRow, InvalidRow)
        assert previous < row.line <= physical_lines
        previous = row.line
        if isinstance(row, InvalidRow):
            assert row.reason
            assert row.column is None or row.column in CANONICAL_COLUMNS
            continue
        assert row.seller_sku and row.seller_sku == row.seller_sku.strip()
        assert len(row.seller_sku) <= MAX_SKU_LENGTH
        for value in (row.seller_sku, row.asin, row.name, row.listing_id, row.product_id,
                      row.fulfillment_channel, row.status, row.open_date_raw):  # fmt: skip
            assert value is None or (isinstance(value, str) and "\x00" not in value)
        assert row.name is None or len(row.name) <= MAX_FIELD_LENGTH
        assert row.price is None or (row.price.is_finite() and row.price >= 0)
        assert row.quantity is None or row.quantity >= 0
        assert row.open_date is None or row.open_date.utcoffset().total_seconds() == 0
        assert row.asin is None or row.asin == row.asin.upper()
    return rows


# --------------------------------------------------------------------------- arbitrary bytes

header_prefixes = st.sampled_from(
    [b"", (US_HEADER_LINE + "\n").encode(), (US_HEADER_LINE + "\r\n").encode(), b"\xef\xbb\xbf"]
    + [("\t".join(HEADERS[family]) + "\n").encode("utf-8") for family in ("cn", "de", "jp")]
)


@FUZZ
@given(
    prefix=header_prefixes,
    body=st.binary(max_size=2000),
    declared=declared_charsets,
    default=default_encodings,
)
def test_random_bytes_never_crash(workdir, prefix, body, declared, default):
    path = workdir / "random.tsv"
    path.write_bytes(prefix + body)
    _check(path, declared, default, require_asin=False)
    _check(path, declared, default)


# --------------------------------------------------------------------------- mutated reports

INJECTIONS = [b"\t", b"\r", b"\x00", b"\n", b"\r\n", b'"', b"\xff", b"\x81", b"\xe2\x82", b" "]
mutation = st.one_of(
    st.tuples(st.just("insert"), st.floats(0, 1), st.sampled_from(INJECTIONS)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=6)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 40)),
)
table_mutation = st.one_of(
    st.tuples(st.just("field"), st.integers(0, 10**6), st.text(max_size=30)),
    st.tuples(st.just("drop_column"), st.integers(0, 10**6), st.none()),
    st.tuples(st.just("shuffle_columns"), st.integers(0, 10**6), st.none()),
    st.tuples(st.just("shuffle_header_only"), st.integers(0, 10**6), st.none()),
    st.tuples(st.just("duplicate_row"), st.integers(0, 10**6), st.none()),
    st.tuples(st.just("sku_variant"), st.integers(0, 10**6), st.sampled_from(["upper", "pad"])),
)


def _table(data: bytes, encoding: str) -> tuple[list[str], list[list[str]]]:
    lines = data.decode(encoding).split("\n")[:-1]
    header = lines[0].split("\t")
    return header, [line.split("\t") for line in lines[1:]]


def _untable(header: list[str], rows: list[list[str]], encoding: str) -> bytes:
    text = "\n".join("\t".join(cells) for cells in [header, *rows]) + "\n"
    return text.encode(encoding, errors="replace")


def _apply_table_mutation(header, rows, op, seed, payload):
    rng = random.Random(seed)
    width = len(header)
    if op == "field" and rows:
        row = rng.choice(rows)
        row[rng.randrange(len(row))] = payload
    elif op == "drop_column" and width > 1:
        column = rng.randrange(width)
        header = header[:column] + header[column + 1 :]
        rows = [cells[:column] + cells[column + 1 :] for cells in rows]
    elif op in ("shuffle_columns", "shuffle_header_only"):
        order = list(range(width))
        rng.shuffle(order)
        header = [header[i] for i in order]
        if op == "shuffle_columns":
            rows = [[cells[i] for i in order] for cells in rows]
    elif op == "duplicate_row" and rows:
        rows = [*rows, list(rng.choice(rows))]
    elif op == "sku_variant" and rows and "seller-sku" in header:
        column = header.index("seller-sku")
        copy = list(rng.choice(rows))
        sku = copy[column]
        copy[column] = sku.swapcase() if payload == "upper" else f"  {sku}\u3000"
        rows = [*rows, copy]
    return header, rows


@FUZZ
@given(
    family=families,
    n=st.integers(0, 12),
    seed=st.integers(0, 2**32),
    channel=st.sampled_from(["DEFAULT", "mixed"]),
    table_ops=st.lists(table_mutation, max_size=4),
    byte_ops=st.lists(mutation, max_size=6),
    crlf=st.booleans(),
    declared=declared_charsets,
)
def test_mutated_reports_never_crash(
    workdir, family, n, seed, channel, table_ops, byte_ops, crlf, declared
):
    encoding = DEFAULT_ENCODING[family]
    rows = demo_listings(n, seed=seed, channel=channel, marketplace=FAMILY_MARKETPLACE[family])
    header, table = _table(render_report(rows, family), encoding)
    for op, op_seed, payload in table_ops:
        header, table = _apply_table_mutation(header, table, op, op_seed, payload)
    data = bytearray(_untable(header, table, encoding))
    if crlf:
        data = bytearray(bytes(data).replace(b"\n", b"\r\n"))
    for op, where, payload in byte_ops:
        position = int(where * len(data))
        if op == "insert":
            data[position:position] = payload
        else:
            del data[position : position + payload]
    path = workdir / "mutated.tsv"
    path.write_bytes(bytes(data))
    _check(path, declared, encoding, require_asin=False)
    if not table_ops and not byte_ops:
        # Unmutated: with the right charset every row must come out as an offer.
        parsed = _check(path, None, encoding, require_asin=family not in NO_ASIN_FAMILIES)
        assert parsed is not None and len(parsed) == n
        assert all(isinstance(row, OfferRow) for row in parsed)


# --------------------------------------------------------------------------- column order


def _stable_shuffle(header: tuple[str, ...], rng: random.Random) -> list[int]:
    """A random column order that keeps same-named columns in their original relative order.

    Duplicate names (CN ``商品编码``) are resolved by position, so only their order matters.
    """
    order = list(range(len(header)))
    rng.shuffle(order)
    by_name: dict[str, list[int]] = {}
    for index in range(len(header)):
        by_name.setdefault(header[index], []).append(index)
    taken = {name: iter(indexes) for name, indexes in by_name.items()}
    return [next(taken[header[index]]) for index in order]


@FUZZ
@given(
    family=families,
    n=st.integers(0, 10),
    seed=st.integers(0, 2**32),
    shuffle_seed=st.integers(0, 2**32),
    crlf=st.booleans(),
)
def test_shuffling_columns_gives_identical_rows(workdir, family, n, seed, shuffle_seed, crlf):
    encoding = DEFAULT_ENCODING[family]
    rows = list(
        demo_listings(n, seed=seed, channel="mixed", marketplace=FAMILY_MARKETPLACE[family])
    )
    ending = "\r\n" if crlf else "\n"
    original = render_report(rows, family, line_ending=ending)
    header, table = _table(render_report(rows, family), encoding)
    order = _stable_shuffle(HEADERS[family], random.Random(shuffle_seed))
    shuffled_table = [[cells[i] for i in order] for cells in table]
    shuffled = _untable([header[i] for i in order], shuffled_table, encoding)
    if crlf:
        shuffled = shuffled.replace(b"\n", b"\r\n")

    results = []
    for name, data in (("original.tsv", original), ("shuffled.tsv", shuffled)):
        path = workdir / name
        path.write_bytes(data)
        parsed = _check(path, None, encoding, require_asin=False)
        assert parsed is not None
        results.append(parsed)
    assert results[0] == results[1]
    assert len(results[0]) == n and all(isinstance(row, OfferRow) for row in results[0])


# --------------------------------------------------------------------------- SKUs

sku_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\n\r\x00"),
    max_size=210,
)


@FUZZ
@given(
    skus=st.lists(sku_text, max_size=8),
    variants=st.lists(st.sampled_from(["same", "upper", "lower", "pad", "tab_pad"]), max_size=8),
    quirky=st.lists(st.sampled_from(["", " ", "\u00a0", "\u3000", "\x0b", "\x1c"]), max_size=3),
)
def test_skus_are_stripped_and_case_preserved(workdir, skus, variants, quirky):
    values = list(skus)
    for index, variant in enumerate(variants):
        if not skus:
            break
        base = skus[index % len(skus)]
        values.append(
            {
                "same": base,
                "upper": base.upper(),
                "lower": base.lower(),
                "pad": f"  {base} ",
                "tab_pad": f"\x0b{base}\x0c",
            }[variant]  # fmt: skip
        )
    values.extend(quirky)
    rows = [
        dict(row, seller_sku=sku)
        for row, sku in zip(demo_listings(len(values), seed=1), values, strict=True)
    ]
    path = workdir / "skus.tsv"
    path.write_bytes(render_report(rows, "us"))
    parsed = _check(path, "utf8", "utf-8")
    assert parsed is not None and len(parsed) == len(values)
    for row, sku in zip(parsed, values, strict=True):
        expected = sku.strip()
        if not expected:
            assert isinstance(row, InvalidRow) and row.column == "seller-sku"
        elif len(expected) > MAX_SKU_LENGTH:
            assert isinstance(row, InvalidRow) and "longer than" in row.reason
        else:
            assert isinstance(row, OfferRow) and row.seller_sku == expected


@FUZZ
@given(
    price=st.decimals(min_value=0, max_value=10**7, places=2, allow_nan=False),
    family=st.sampled_from(["us", "de", "fr", "jp", "pl", "es"]),
)
def test_prices_round_trip_in_every_number_style(workdir, price, family):
    row = dict(next(demo_listings(1, marketplace=FAMILY_MARKETPLACE[family])), price=price)
    path = workdir / "price.tsv"
    path.write_bytes(render_report([row], family))
    (parsed,) = _check(path, None, DEFAULT_ENCODING[family], require_asin=False)
    assert isinstance(parsed, OfferRow) and parsed.price == price
    assert isinstance(parsed.price, Decimal)
