"""Auto-link over everything an operator chose: inline when small, a background job when large.

A small scope is linked in the request (one set-based :func:`~.links.autolink`). Above
``XSALE_AMAZON_AUTOLINK_INLINE_LIMIT`` offers an :class:`AutoLinkRun` records the request and
an RQ job (argument: the run id) links the scope in id windows of
``XSALE_AMAZON_AUTOLINK_BATCH`` offers, one transaction and one progress update per window,
so a page can show progress and a worker that dies loses at most one window (links already
committed stay; running the same auto-link again finishes the rest).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..babel import gettext as _
from ..dialects import session_read_committed
from ..liveness import Heartbeat, beat_interval, is_stale
from ..proxies import current_amazon
from ..timeutil import utcnow
from .links import AutoLinkResult, autolink
from .offer_scope import AUTOLINK_KEYS, OfferScope, count_offers

JOB_FUNC = "xsale_amazon_plugin.linking.autolink_job.run_autolink_job"
#: Offer ids one request may name (bound parameters stay far below every database's limit).
MAX_OFFER_IDS = 10_000
#: Upper bound of windows one job processes (1M offers / 10k = 100; this is far above).
MAX_WINDOWS = 100_000


class AutoLinkUnavailable(Exception):
    """Auto-link cannot start; :meth:`message` says why in the operator's language."""

    def __init__(self, reason: str, key: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.key = key

    def message(self) -> str:
        if self.reason == "key":
            return _("The host product has no %(key)s to compare with.", key=self.key.upper())
        if self.reason == "queue":
            return _("The job queue (Redis) is not reachable, so auto-link cannot run in the "
                     "background. Try again in a moment or narrow the offers down.")
        return _("Auto-link could not start.")


@dataclass(frozen=True)
class AutoLinkRequest:
    """The offers to auto-link: a workspace scope or explicit offer ids."""

    scope: OfferScope | None = None
    offer_ids: tuple[int, ...] | None = None

    @classmethod
    def for_scope(cls, scope: OfferScope) -> AutoLinkRequest:
        return cls(scope=scope)

    @classmethod
    def for_offers(cls, ids: Any) -> AutoLinkRequest:
        """Ticked offers (at most :data:`MAX_OFFER_IDS`; a list page holds at most 500)."""
        numbers = []
        for value in list(ids)[:MAX_OFFER_IDS]:
            try:
                number = int(value)
            except (TypeError, ValueError):
                continue
            if 0 < number < 2**63:
                numbers.append(number)
        return cls(offer_ids=tuple(sorted(set(numbers))))

    def criteria(self) -> list[Any]:
        if self.offer_ids is not None:
            offer = current_amazon.models.AmazonOffer
            return [offer.id.in_(self.offer_ids)] if self.offer_ids else [sa.false()]
        return (self.scope or OfferScope()).criteria()

    def to_json(self) -> dict[str, Any]:
        if self.offer_ids is not None:
            return {"offer_ids": list(self.offer_ids)}
        return {"scope": (self.scope or OfferScope()).to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AutoLinkRequest:
        if "offer_ids" in data:
            return cls.for_offers(data["offer_ids"])
        return cls.for_scope(OfferScope.from_json(data.get("scope")))


@dataclass
class AutoLinkOutcome:
    """Either the result of an inline auto-link or the id of the background run."""

    result: AutoLinkResult
    run_id: int | None = None


def inline_limit() -> int:
    return int(current_amazon.settings.autolink_inline_limit)


def _not_removed() -> Any:
    return current_amazon.models.AmazonOffer.removed_at.is_(None)


def start_autolink(by: str, request: AutoLinkRequest, *, user: str | None = None,
                   commit: bool = True) -> AutoLinkOutcome:
    """Auto-link the request's offers by ``by`` now, or queue a background run when large.

    Up to ``XSALE_AMAZON_AUTOLINK_INLINE_LIMIT`` offers are linked in this call (one
    set-based :func:`~xsale_amazon_plugin.autolink`); above it an auto-link run is recorded
    and an RQ job links the scope in windows of ``XSALE_AMAZON_AUTOLINK_BATCH`` offers.

    :param by: the key: ``"sku"``, ``"ean"`` or ``"asin"``.
    :param request: the offers: an :class:`AutoLinkRequest` (selected ids, or the offers
        workspace's scope).
    :param user: the operator's name recorded on the links and the run.
    :param commit: commit the session (inline linking); with False the caller commits.
    :returns: an :class:`AutoLinkOutcome`: the counts when linked inline, or the id of the
        background run.
    :raises AutoLinkUnavailable: ``by`` is not a key, or its product attribute is not
        configured; or the scope is too large to link inline and the job queue is down.

    .. versionadded:: 0.2.0
    """
    state = current_amazon
    if by not in AUTOLINK_KEYS or state.product_attr(by) is None:
        raise AutoLinkUnavailable("key", by)
    criteria = request.criteria()
    limit = inline_limit()
    size = count_offers([*criteria, _not_removed()], cap=limit)
    if size <= limit:
        return AutoLinkOutcome(autolink(by, criteria=criteria, user=user, commit=commit))
    run = state.models.AutoLinkRun(key=by, request=request.to_json(), requested_by=user,
                                   status="queued")
    session = state.db.session
    session.add(run)
    session.flush()
    queue_tag = re.sub(r"[^A-Za-z0-9_-]", "-", str(current_amazon.settings.queue))[:40]
    run.rq_job_id = f"xsale-amazon-autolink-{queue_tag}-{run.id}"
    session.commit()  # the job must find its run
    try:
        state.queue.enqueue(JOB_FUNC, run.id, job_id=run.rq_job_id,
                            job_timeout=int(current_amazon.settings.job_timeout), result_ttl=3600,
                            failure_ttl=7 * 24 * 3600,
                            description=f"xsale-amazon auto-link run {run.id}")
    except Exception as exc:
        from redis.exceptions import RedisError

        if not isinstance(exc, RedisError):
            raise
        run.status, run.error, run.finished_at = "failed", "queue unreachable", utcnow()
        session.commit()
        raise AutoLinkUnavailable("queue") from exc
    return AutoLinkOutcome(AutoLinkResult(0, 0, 0, 0, []), run_id=run.id)


def run_autolink_job(run_id: int) -> None:
    """RQ job: auto-link a run's offers window by window, committing progress after each."""
    state = current_amazon
    m = state.models
    session = state.db.session
    run = session.get(m.AutoLinkRun, run_id)
    if run is None or run.status != "queued":
        return
    request = AutoLinkRequest.from_json(run.request)
    criteria = [*request.criteria(), _not_removed()]
    run.status, run.started_at, run.heartbeat_at = "running", utcnow(), utcnow()
    run.offers_total = count_offers(criteria)
    session.commit()
    batch = max(int(current_amazon.settings.autolink_batch), 1)
    table = m.AutoLinkRun.__table__
    heartbeat = Heartbeat(state.db.engine, table,
                          sa.and_(table.c.id == run_id, table.c.status == "running"),
                          beat_interval(state.settings.heartbeat_timeout),
                          name=f"auto-link run {run_id}")
    try:
        with heartbeat:
            _link_windows(run, request, criteria, batch)
        run.status, run.finished_at = "succeeded", utcnow()
        session.commit()
    except Exception as exc:
        session.rollback()
        run = session.get(m.AutoLinkRun, run_id)
        if run is not None:
            run.status, run.finished_at = "failed", utcnow()
            run.error = f"{type(exc).__name__}: {str(exc)[:300]}"
            session.commit()
        raise


def _link_windows(run: Any, request: AutoLinkRequest, criteria: list[Any], batch: int) -> None:
    """Link the run's scope in id windows of ``batch`` offers, committing each window with
    the run's progress."""
    session = current_amazon.db.session
    offer = current_amazon.models.AmazonOffer
    total = AutoLinkResult(0, 0, 0, 0, [])
    last_id: int | None = None
    for _window in range(MAX_WINDOWS):
        session_read_committed(session)  # MySQL/MariaDB: see linking.autolink
        after = [offer.id > last_id] if last_id is not None else []
        # The id that closes this window: the batch-th offer id in scope after the last one.
        ids = session.execute(
            sa.select(offer.id).where(*criteria, *after).order_by(offer.id)
            .offset(batch - 1).limit(1)
        ).scalar()
        window = [*after] + ([offer.id <= ids] if ids is not None else [])
        result = autolink(run.key, criteria=[*request.criteria(), *window],
                          user=run.requested_by, commit=False)
        total = total.add(result)
        _save_progress(run, total)
        session.commit()
        if ids is None:
            return
        last_id = ids


def _save_progress(run: Any, total: AutoLinkResult) -> None:
    run.offers_done = total.total
    run.count_linked = total.linked
    run.count_ambiguous = total.ambiguous
    run.count_no_match = total.no_match
    run.count_no_key = total.no_key
    run.count_already_linked = total.already_linked
    run.heartbeat_at = utcnow()


def run_result(run: Any) -> AutoLinkResult:
    """The summary counts recorded on a background run."""
    return AutoLinkResult(
        linked=run.count_linked, ambiguous=run.count_ambiguous, no_match=run.count_no_match,
        already_linked=run.count_already_linked, ambiguous_examples=[],
        no_key=run.count_no_key, total=run.offers_done,
    )


def run_is_stalled(run: Any) -> bool:
    """A running run whose worker stopped beating (died): the page says so."""
    if run.status != "running":
        return False
    return is_stale(run.heartbeat_at, utcnow(), current_amazon.settings.heartbeat_timeout)
