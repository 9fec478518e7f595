"""CSV round trip of offer-to-product mappings: export offers with their links, and import a
mapping file with a dry-run plan before anything is applied.

The import file has a header line; columns (any order, others ignored):

- ``seller_sku`` (required): the offer's seller SKU;
- ``integration_id`` (optional): which integration the SKU belongs to; without it the SKU must
  be unique among the integrations in scope;
- the product key: a ``product`` column, or the export's ``product_<key>`` column, holding the
  product's value of the chosen attribute (``id``, ``sku``, ``ean`` or ``asin``); a line whose
  product is empty (an unlinked offer of the export) is skipped.

Comma, semicolon or tab separated, UTF-8 (with or without BOM). :func:`plan_import` resolves
every line set-based and classifies it; :func:`apply_plan` links in one transaction and never
replaces an existing link unless ``overwrite`` was asked for.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..amazon.report_parser import GTIN_TYPES
from ..babel import gettext as _
from ..babel import ngettext
from ..models import LinkMethod
from ..proxies import current_amazon
from .links import link_pairs, product_key

EXPORT_COLUMNS = ("integration_id", "integration", "seller_sku", "asin", "name", "offer_ean",
                  "status", "removed", "product_id", "product_sku", "product_ean",
                  "product_name", "link_method")
KEYS = ("id", "sku", "ean", "asin")
#: Share of the looked-up lines whose product is missing above which the preview suggests
#: another product key.
_KEY_HINT_SHARE = 0.5
#: Lines of one import file (bounded: the plan is held in memory).
MAX_LINES = 200_000
MAX_ERRORS_KEPT = 200
_CHUNK = 1000


def key_label(by: str) -> str:
    """The product key as the form names it."""
    return _("product ID") if by == "id" else by.upper()


def available_keys() -> list[str]:
    """The product keys the host's products have (the primary key always)."""
    return [k for k in KEYS if k == "id" or current_amazon.product_attr(k) is not None]


def default_key() -> str:
    """SKU when the products have one: what a mapping file usually holds."""
    return "sku" if "sku" in available_keys() else "id"


def _chunks(items: list[Any], size: int = _CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _export_rows(integration_id: int | None = None) -> Iterator[list[str]]:
    """The export as rows of text (header first), streamed in offer id order."""
    m = current_amazon.models
    offer = m.AmazonOffer.__table__
    link = m.OfferProductLink.__table__
    integ = m.AmazonIntegration.__table__
    pk = m.product_pk
    attrs = {k: current_amazon.product_attr(k) for k in ("sku", "ean", "name")}
    product_cols = [
        (a.expression if hasattr(a, "expression") else a).label(f"p_{k}") if a is not None
        else sa.null().label(f"p_{k}") for k, a in attrs.items()
    ]
    query = (
        sa.select(offer.c.id, offer.c.integration_id, integ.c.name.label("integration"),
                  offer.c.seller_sku, offer.c.asin, offer.c.name, offer.c.product_id,
                  offer.c.product_id_type, offer.c.status, offer.c.removed_at,
                  link.c.product_id.label("linked"), link.c.method, *product_cols)
        .select_from(offer.join(integ, integ.c.id == offer.c.integration_id)
                     .outerjoin(link, link.c.offer_id == offer.c.id)
                     .outerjoin(pk.table, pk == link.c.product_id))
        .order_by(offer.c.id)
    )
    if integration_id is not None:
        query = query.where(offer.c.integration_id == integration_id)
    yield list(EXPORT_COLUMNS)
    conn = current_amazon.db.session.connection()
    for row in conn.execute(query.execution_options(yield_per=2000)):
        # offer_ean: Amazon's product ID only when it is a GTIN (not an ASIN or GCID).
        gtin = row.product_id if (row.product_id_type or "").upper() in GTIN_TYPES else None
        yield ["" if v is None else str(v) for v in (
            row.integration_id, row.integration, row.seller_sku, row.asin, row.name,
            gtin, row.status, "yes" if row.removed_at else "", row.linked,
            row.p_sku, row.p_ean, row.p_name, row.method)]


def export_csv(integration_id: int | None = None) -> Iterator[str]:
    """The export as CSV text chunks (UTF-8 with BOM so spreadsheets detect the encoding)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    yield "\ufeff"
    for n, row in enumerate(_export_rows(integration_id)):
        writer.writerow([_spreadsheet_safe(v) for v in row])
        if n % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _spreadsheet_safe(value: str) -> str:
    # A cell starting with = + - @ is a formula to spreadsheets (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@") and not _is_number(value) else value


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


# --- import --------------------------------------------------------------------------------

@dataclass
class PlanLine:
    line: int
    seller_sku: str
    product_value: str
    offer_id: int | None = None
    product_id: Any = None
    current_product: Any = None
    # link, same, conflict, unknown_offer, unknown_product, error, no_product (skipped)
    outcome: str = ""
    message: str = ""


@dataclass
class ImportPlan:
    by: str
    overwrite: bool
    lines: list[PlanLine] = field(default_factory=list)
    file_error: str | None = None
    #: Shown once above the lines: most products were not found by the chosen key.
    key_warning: str | None = None

    @property
    def counts(self) -> Counter[str]:
        return Counter(line.outcome for line in self.lines)

    @property
    def will_link(self) -> int:
        c = self.counts
        return c["link"] + (c["conflict"] if self.overwrite else 0)

    @property
    def conflicts(self) -> int:
        return self.counts["conflict"]

    @property
    def skipped(self) -> int:
        """Lines without a product (the export's unlinked offers): nothing to link."""
        return self.counts["no_product"]

    @property
    def unknown(self) -> int:
        c = self.counts
        return c["unknown_offer"] + c["unknown_product"]

    @property
    def errors(self) -> list[PlanLine]:
        return [x for x in self.lines if x.outcome in ("error", "unknown_offer",
                                                       "unknown_product")]

    @property
    def digest(self) -> str:
        """Identifies what would be applied: the apply step refuses a plan that changed."""
        h = hashlib.sha256(f"{self.by}|{self.overwrite}".encode())
        for x in self.lines:
            h.update(f"{x.line}|{x.offer_id}|{x.product_id}|{x.outcome}\n".encode())
        return h.hexdigest()[:32]


def _read(text: str) -> tuple[list[str], list[list[str]]]:
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise ValueError(_("The file is empty."))
    sample = text[:4096]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    rows = []
    for n, row in enumerate(reader):
        if n > MAX_LINES:
            raise ValueError(_("The file has more than %(num)s lines; split it.", num=MAX_LINES))
        rows.append(row)
    header = [h.strip().lower() for h in rows[0]]
    return header, rows[1:]


def _cell(row: list[str], index: int | None) -> str:
    return row[index].strip() if index is not None and index < len(row) else ""


def plan_import(text: str, *, by: str, integration_id: int | None = None,
                overwrite: bool = False) -> ImportPlan:
    """Resolve every line of a mapping file; nothing is written."""
    if by not in KEYS:
        raise ValueError(f"by must be one of {', '.join(KEYS)}")
    plan = ImportPlan(by, overwrite)
    if by not in available_keys():
        plan.file_error = _("The products have no %(key)s attribute configured: choose "
                            "another “Product key in the file”.", key=key_label(by))
        return plan
    try:
        header, rows = _read(text)
    except (ValueError, csv.Error) as exc:
        plan.file_error = str(exc)
        return plan
    if not any(value.strip() for row in rows for value in row):
        plan.file_error = _("The file has a header line but no lines to import.")
        return plan
    product_col = "product" if "product" in header else f"product_{by}"
    missing = [c for c in ("seller_sku", product_col) if c not in header]
    if missing:
        found = ", ".join(h for h in header if h)
        plan.file_error = ngettext(
            "The header has no column %(columns)s. Expected: seller_sku, product (or %(alt)s) "
            "and optionally integration_id. Found: %(found)s.",
            "The header has no columns %(columns)s. Expected: seller_sku, product (or "
            "%(alt)s) and optionally integration_id. Found: %(found)s.",
            len(missing), columns=", ".join(missing), alt=f"product_{by}",
            found=found[:500] or "—")
        return plan
    i_sku, i_product = header.index("seller_sku"), header.index(product_col)
    i_integ = header.index("integration_id") if "integration_id" in header else None
    wanted_integ: dict[int, int | None] = {}
    for n, row in enumerate(rows, start=2):
        if not any(value.strip() for value in row):
            continue
        line = PlanLine(n, _cell(row, i_sku)[:200], _cell(row, i_product)[:200])
        plan.lines.append(line)
        if not line.product_value:
            line.outcome = "no_product"
            continue
        if not line.seller_sku:
            line.outcome = "error"
            line.message = _("The seller SKU is empty: fill in seller_sku or delete the line.")
            continue
        raw_integ = _cell(row, i_integ)
        if raw_integ:
            try:
                wanted_integ[n] = int(raw_integ)
            except ValueError:
                line.outcome = "error"
                line.message = _("integration_id %(value)s is not a number.", value=raw_integ)
        else:
            wanted_integ[n] = integration_id
    _resolve_offers(plan, wanted_integ)
    _resolve_products(plan)
    _classify(plan)
    return plan


def _resolve_offers(plan: ImportPlan, wanted_integ: dict[int, int | None]) -> None:
    m = current_amazon.models
    offer = m.AmazonOffer.__table__
    link = m.OfferProductLink.__table__
    conn = current_amazon.db.session.connection()
    open_lines = [x for x in plan.lines if not x.outcome]
    found: dict[str, list[tuple[int, int, Any]]] = {}
    for part in _chunks(sorted({x.seller_sku for x in open_lines})):
        for oid, integ, sku, linked in conn.execute(
            sa.select(offer.c.id, offer.c.integration_id, offer.c.seller_sku, link.c.product_id)
            .select_from(offer.outerjoin(link, link.c.offer_id == offer.c.id))
            .where(offer.c.seller_sku.in_(part), offer.c.removed_at.is_(None))
        ):
            found.setdefault(sku, []).append((oid, integ, linked))
    for x in open_lines:
        integ = wanted_integ.get(x.line)
        matches = [f for f in found.get(x.seller_sku, []) if integ is None or f[1] == integ]
        if not matches:
            x.outcome = "unknown_offer"
            x.message = _(
                "No offer with seller SKU %(sku)s, or it is no longer in Amazon's report.",
                sku=x.seller_sku)
        elif len(matches) > 1:
            x.outcome = "error"
            x.message = _("Seller SKU %(sku)s exists in several integrations: add an "
                          "integration_id column or choose the integration.", sku=x.seller_sku)
        else:
            x.offer_id, _integ, x.current_product = matches[0]


def _resolve_products(plan: ImportPlan) -> None:
    m = current_amazon.models
    pk = m.product_pk
    conn = current_amazon.db.session.connection()
    if plan.by == "id":
        column: Any = pk
    else:
        attr = current_amazon.product_attr(plan.by)  # present: plan_import checked the key
        column = attr.expression if hasattr(attr, "expression") else attr
    open_lines = [x for x in plan.lines if not x.outcome]
    values: dict[str, Any] = {}
    for x in open_lines:
        if plan.by == "id":
            try:
                values[x.product_value] = product_key(pk, x.product_value)
            except LookupError:
                continue
        else:
            values[x.product_value] = x.product_value
    found: dict[str, list[Any]] = {}
    keys = list(values.items())
    for part in _chunks(keys):
        lookup = {v: raw for raw, v in part}
        for value, product_id in conn.execute(
            sa.select(column, pk).where(column.in_([v for _raw, v in part]))
        ):
            raw = lookup.get(value, str(value))
            found.setdefault(raw, []).append(product_id)
    for x in open_lines:
        matches = found.get(x.product_value, [])
        if not matches:
            x.outcome = "unknown_product"
            x.message = _("No product with %(key)s %(value)s.", key=plan.by.upper(),
                          value=x.product_value)
        elif len(matches) > 1:
            x.outcome = "error"
            x.message = _("%(num)s products have %(key)s %(value)s; use another key.",
                          num=len(matches), key=plan.by.upper(), value=x.product_value)
        else:
            x.product_id = matches[0]
    missing = sum(1 for x in open_lines if x.outcome == "unknown_product")
    if missing and missing == len(open_lines):
        plan.key_warning = _("No line’s product was found by %(key)s: check “Product key in "
                             "the file”.", key=key_label(plan.by))
    elif missing > len(open_lines) * _KEY_HINT_SHARE:
        plan.key_warning = _("The products of %(num)s of %(total)s lines were not found by "
                             "%(key)s: check “Product key in the file”.", num=missing,
                             total=len(open_lines), key=key_label(plan.by))


def _product_labels(product_ids: Iterable[Any]) -> dict[str, str]:
    """``SKU · name`` of each product (by its primary key as a string), as the offers list
    shows linked products; a product without either is left out (callers show its id)."""
    m = current_amazon.models
    pk = m.product_pk
    cols = []
    for which in ("sku", "name"):
        attr = current_amazon.product_attr(which)
        cols.append((attr.expression if hasattr(attr, "expression") else attr).label(which)
                    if attr is not None else sa.null().label(which))
    conn = current_amazon.db.session.connection()
    out: dict[str, str] = {}
    for part in _chunks(list({str(i): i for i in product_ids if i is not None}.values())):
        for row in conn.execute(sa.select(pk.label("pk"), *cols).where(pk.in_(part))):
            label = " · ".join(str(v) for v in (row.sku, row.name) if v not in (None, ""))
            if label:
                out[str(row.pk)] = label
    return out


def _classify(plan: ImportPlan) -> None:
    targets: dict[int, Any] = {}
    conflicts: list[PlanLine] = []
    for x in plan.lines:
        if x.outcome or x.offer_id is None:
            continue
        previous = targets.get(x.offer_id)
        if previous is not None and previous != x.product_id:
            x.outcome = "error"
            x.message = _("Offer %(sku)s appears again with another product; the first line "
                          "counts.", sku=x.seller_sku)
            continue
        targets[x.offer_id] = x.product_id
        if x.current_product is None:
            x.outcome = "link"
        elif str(x.current_product) == str(x.product_id):
            x.outcome = "same"
        else:
            x.outcome = "conflict"
            conflicts.append(x)
    labels = _product_labels(x.current_product for x in conflicts)
    for x in conflicts:
        product = labels.get(str(x.current_product)) or _("ID %(id)s", id=x.current_product)
        x.message = _("Offer %(sku)s is linked to another product (%(product)s).",
                      sku=x.seller_sku, product=product)


def apply_plan(plan: ImportPlan, *, user: str | None = None) -> int:
    """Link what the plan says, in one transaction; returns how many offers were linked."""
    pairs: Iterable[tuple[Any, Any]] = [
        (x.offer_id, x.product_id) for x in plan.lines
        if x.outcome == "link" or (x.outcome == "conflict" and plan.overwrite)
    ]
    return link_pairs(list(pairs), by=user, method=LinkMethod.MANUAL, replace=plan.overwrite)
