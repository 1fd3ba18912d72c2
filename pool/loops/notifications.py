"""Notifications: the leader delivers the outbox's events to the operator's webhooks and to the farmers' own.

The store writes an event in the transaction of the change it tells (a block won, a reward confirmed, a payout sent
or confirmed, payout instructions changed); this loop adds the two it detects itself, once per episode: a member
farmer silent for ``notifications.silent_after_hours`` (the episode: since its last partial) and the books out of
balance (the episode: until they balance again, which is told too).

Each pass posts every due event to each destination that has not taken it yet and records each 2xx at once; an event
some destination refused or did not answer is tried again later (the wait doubles, up to ``retry_max``), and given up
after ``max_attempts`` passes. A crash after a receiver's 2xx and before its record sends the event again: delivery
is at least once, and the idempotency key (header and body) lets the receiver take it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp

from pool.chia_adapter import bytes32
from pool.config import DAY_SECONDS, NotificationsConfig, PoolConfig
from pool.context import PoolContext
from pool.kill_points import kill_point
from pool.store.abstract import AbstractPoolStore
from pool.store.models import NewNotification, Notification, NotificationKind
from pool.webhooks import (
    WebhookFailed,
    WebhookRefused,
    body,
    check_webhook_url,
    destination_name,
    post,
    webhook_session,
    xch,
)

log = logging.getLogger(__name__)

HOUR = 3600
# Seconds between two looks at the books (the ledger's sums) and for silent farmers (an index read per member).
CHECK_INTERVAL = 60.0
FARMER_DESTINATION = "farmer"
EVENTS_PER_PASS = 100


@dataclass(frozen=True)
class Destination:
    name: str  # as the store records its deliveries
    url: str
    format: str
    farmer: bool  # a farmer's webhook: called through the public-only client unless private ones are allowed


class NotificationLoop:
    name = "notifications"

    def __init__(self) -> None:
        self._checked = float("-inf")  # time.monotonic() of the last look at the books and for silent farmers

    def interval(self, ctx: PoolContext) -> float:
        return ctx.config.notifications.interval

    async def run_once(self, ctx: PoolContext) -> int:
        """Detect this pass's events, then deliver what is due; how many events were closed."""
        now = int(ctx.now())
        if time.monotonic() - self._checked >= CHECK_INTERVAL:
            self._checked = time.monotonic()
            await check_books(ctx.store, now)
            await check_silent_farmers(ctx.store, ctx.config.notifications, now)
            # Closed events are kept as long as partials: a silence's key names a partial still held.
            await ctx.store.prune_notifications(retention_cutoff(ctx.config, now))
        return await deliver_due(ctx.store, ctx.config.notifications, now)


def retention_cutoff(config: PoolConfig, now: int) -> int:
    """Events closed before this moment are deleted (a pass deletes a batch of them)."""
    return now - config.partials.retention_days * DAY_SECONDS


async def check_books(store: AbstractPoolStore, now: int) -> None:
    """Tell the books going out of balance, and back, once each time."""
    ledger = await store.ledger()
    latest = [
        event
        for kind in (NotificationKind.BOOKS_UNBALANCED, NotificationKind.BOOKS_BALANCED)
        for event in await store.notifications(limit=1, kind=kind)
    ]
    last = max(latest, key=lambda event: event.id, default=None)
    unbalanced_told = last is not None and last.kind is NotificationKind.BOOKS_UNBALANCED
    if ledger.balanced == unbalanced_told:
        kind = NotificationKind.BOOKS_BALANCED if ledger.balanced else NotificationKind.BOOKS_UNBALANCED
        difference = ledger.accounted - ledger.confirmed_claims - ledger.pre_ledger_excess - ledger.operator_funding
        await store.add_notification(kind, f"{kind.value}:{now}", {"difference": difference}, now)


async def check_silent_farmers(store: AbstractPoolStore, config: NotificationsConfig, now: int) -> None:
    """Tell each member farmer silent for ``silent_after_hours``, once per silence (keyed by its last partial)."""
    if config.silent_after_hours == 0:
        return
    cutoff = now - config.silent_after_hours * HOUR
    kind = NotificationKind.FARMER_SILENT
    silences = {
        f"{kind.value}:{launcher_id.hex()}:{last}": (launcher_id, last)
        for launcher_id, last in (await store.last_partial_times(before=cutoff)).items()
    }
    # Only the silences not told yet are written: a farmer silent for days is found again every pass, and a write
    # transaction for each of thousands held the store's writer for seconds every minute.
    told = await store.notification_keys(silences)
    new = [
        NewNotification(kind, key, {"last_partial_at": last, "hours": config.silent_after_hours}, launcher_id)
        for key, (launcher_id, last) in silences.items()
        if key not in told
    ]
    await store.add_notifications(new, now)


async def deliver_due(store: AbstractPoolStore, config: NotificationsConfig, now: int) -> int:
    due = await store.notifications_due(now, limit=EVENTS_PER_PASS)
    if not due:
        return 0
    closed = 0
    delivered: list[int] = []
    failed: set[str] = set()  # URLs that failed this pass: a dead webhook costs one timeout a pass, not one an event
    # The pass's farmers' webhooks in one read: a look-up for each event was a hundred a pass while thousands of
    # silences (after an outage) were told.
    webhooks = await store.farmer_webhooks({event.launcher_id for event in due if event.launcher_id is not None})
    async with _clients(config) as clients:
        for event in due:
            error = await _deliver(store, config, clients, event, destinations(config, event, webhooks), now, failed)
            if error is None:
                delivered.append(event.id)
            else:
                closed += await _settle_failure(store, config, event, error, now)
    # The delivered events closed in one write: a write each (thousands of farmers told of a silence at once, after
    # an outage) made the partials' group commit wait behind a hundred transactions a pass. A crash before it leaves
    # them open, each destination recorded as having taken them: the next pass sends nothing and closes them.
    if delivered:
        await store.close_notifications(delivered, now)
    return closed + len(delivered)


class _Clients:
    """A pass's HTTP clients by "is it a farmer's webhook" (the operator's webhooks may be anywhere), each made when
    first needed: most events of a pass may go nowhere (silences of farmers without a webhook, no operator webhook)."""

    def __init__(self, config: NotificationsConfig) -> None:
        self._config = config
        self._made: dict[bool, aiohttp.ClientSession] = {}

    def client(self, farmer: bool) -> aiohttp.ClientSession:
        if farmer not in self._made:
            public_only = farmer and not self._config.allow_private_webhooks
            self._made[farmer] = webhook_session(self._config.timeout, public_only=public_only)
        return self._made[farmer]

    async def close(self) -> None:
        for client in self._made.values():
            await client.close()


@contextlib.asynccontextmanager
async def _clients(config: NotificationsConfig) -> AsyncIterator[_Clients]:
    clients = _Clients(config)
    try:
        yield clients
    finally:
        await clients.close()


def destinations(
    config: NotificationsConfig, event: Notification, webhooks: Mapping[bytes32, str]
) -> list[Destination]:
    """Where the event goes: the operator's webhooks if it is for the operator, and its farmer's own webhook
    (``webhooks``: the farmers' that set one)."""
    found = []
    if event.to_operator:
        found += [
            Destination(destination_name(hook), hook.url, hook.format, False) for hook in config.operator_webhooks
        ]
    url = None if event.launcher_id is None else webhooks.get(event.launcher_id)
    if url:
        found.append(Destination(FARMER_DESTINATION, url, "json", True))
    return found


async def _deliver(
    store: AbstractPoolStore,
    config: NotificationsConfig,
    clients: _Clients,
    event: Notification,
    to: list[Destination],
    now: int,
    failed: set[str],
) -> str | None:
    """Post the event to each destination (``to``) that has not taken it; what failed, None if every one has."""
    errors = []
    message = event_json(event)
    for destination in to:
        if destination.name in event.delivered_to:
            continue
        if destination.url in failed:
            errors.append(f"{destination.name}: failed earlier in this pass")
            continue
        kill_point("notification-unsent")
        try:
            if destination.farmer:
                check_webhook_url(destination.url, config.allow_private_webhooks)
            await post(
                clients.client(destination.farmer),
                destination.url,
                body(destination.format, describe(event), message),
                event.idempotency_key,
            )
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, WebhookFailed, WebhookRefused) as exc:
            errors.append(f"{destination.name}: {type(exc).__name__}: {exc}")
            failed.add(destination.url)
            continue
        kill_point("notification-posted")
        await store.record_delivery(event.id, destination.name, now)
    return "; ".join(errors)[:1000] if errors else None


async def _settle_failure(
    store: AbstractPoolStore, config: NotificationsConfig, event: Notification, error: str, now: int
) -> int:
    """An event some destination did not take: tried again later, or given up (1: closed) after ``max_attempts``."""
    if event.attempts + 1 >= config.max_attempts:
        log.warning("notification %s given up after %d attempts: %s", event.idempotency_key, event.attempts + 1, error)
        await store.finish_attempt(event.id, now, None, error)
        return 1
    wait = min(config.retry_after * 2**event.attempts, config.retry_max)
    log.info("notification %s not delivered (%s): again in %d s", event.idempotency_key, error, wait)
    await store.finish_attempt(event.id, now, now + wait, error)
    return 0


def event_json(event: Notification) -> dict[str, object]:
    """The event as the plain JSON webhook receives it."""
    return {
        "idempotency_key": event.idempotency_key,
        "kind": event.kind.value,
        "launcher_id": None if event.launcher_id is None else event.launcher_id.hex(),
        "created_at": event.created_at,
        "data": event.payload,
    }


_TEXTS = {
    NotificationKind.BLOCK_WON: "Block won by {farmer} at height {height}: reward {xch}, being claimed",
    NotificationKind.REWARD_CONFIRMED: "Reward of {farmer} confirmed at height {confirmed_height}: {xch}",
    NotificationKind.PAYOUT_SENT: "Payout sent to {farmer}: {xch} (batch {batch_id}, transaction {tx_id})",
    NotificationKind.PAYOUT_CONFIRMED: "Payout to {farmer} confirmed at height {confirmed_height}: {xch}",
    NotificationKind.FARMER_SILENT: "No partial from {farmer} for {hours} hours (last at {last_partial_at})",
    NotificationKind.PAYOUT_INSTRUCTIONS_CHANGED: "Payout instructions of {farmer} changed from {old} to {new}",
    NotificationKind.BOOKS_UNBALANCED: "The pool's books do not balance (difference {difference} mojos)",
    NotificationKind.BOOKS_BALANCED: "The pool's books balance again",
}


class _Fields(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "?"


def describe(event: Notification) -> str:
    """One line for a person (Discord, Slack)."""
    amount = event.payload.get("amount")
    fields = _Fields(event.payload)
    fields["farmer"] = "the pool" if event.launcher_id is None else f"farmer {event.launcher_id.hex()[:12]}"
    fields["xch"] = f"{xch(amount)} XCH" if isinstance(amount, int) else "?"
    return _TEXTS[event.kind].format_map(fields)
