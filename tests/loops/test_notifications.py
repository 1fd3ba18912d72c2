"""The notifications' delivery against a real SQLite store and a real local HTTP server: each event reaches the
operator's webhooks (in Discord's and Slack's forms) and the farmer's own, with its idempotency key; a receiver that
fails is tried again without the others being sent it twice; farmers' webhooks must be https and public unless the
operator allows otherwise; silent farmers and unbalanced books are told once per episode."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pool.config import ConfigError, NotificationsConfig, WebhookConfig, parse_config
from pool.loops import notifications
from pool.loops.notifications import check_books, check_silent_farmers, deliver_due
from pool.store import sql
from pool.store.models import FarmerSettings, NotificationKind
from pool.store.sqlite import SqlitePoolStore
from pool.webhooks import PublicOnlyResolver, WebhookRefused, check_webhook_url
from tests.loops.webhook_receiver import WebhookReceiver
from tests.store.test_store_contract import credit, h, make_farmer, make_partial

NOW = 1_000_000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlitePoolStore]:
    opened = SqlitePoolStore(tmp_path / "pool.sqlite")
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as started:
        yield started


def config_for(receiver: WebhookReceiver, max_attempts: int = 48) -> NotificationsConfig:
    hooks = (WebhookConfig(receiver.url("discord"), "discord"), WebhookConfig(receiver.url("slack"), "slack"))
    return NotificationsConfig(
        operator_webhooks=hooks, allow_private_webhooks=True, retry_after=10, retry_max=40, max_attempts=max_attempts
    )


async def test_each_event_reaches_each_destination_once_with_its_key(
    store: SqlitePoolStore, receiver: WebhookReceiver
) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    hook = receiver.url("farmer")
    await store.change_farmer_settings(FarmerSettings(farmer.launcher_id, webhook_url=hook), now=NOW)
    await credit(store, farmer, "coin", 1_750_000_000_000)
    await store.add_notification(NotificationKind.PAYOUT_SENT, "farmer only", {"amount": 5}, NOW, to_operator=False)
    config = config_for(receiver)

    later = int(time.time()) + 60  # the store stamps the confirmation with the clock
    assert await deliver_due(store, config, later) == 3
    assert await deliver_due(store, config, later + 3600) == 0  # nothing is sent twice
    coin = h("coin").hex()
    operator_keys = [f"block-won:{coin}", f"reward-confirmed:{coin}"]
    assert receiver.keys("discord") == receiver.keys("slack") == operator_keys
    assert receiver.keys("farmer") == operator_keys  # the event without a farmer is nobody's
    assert [r.key for r in receiver.received].count("farmer only") == 0
    discord, slack, farmer_json = (receiver.accepted[path][1].body for path in ("discord", "slack", "farmer"))
    assert discord["content"].startswith(f"Reward of farmer {farmer.launcher_id.hex()[:12]} confirmed")
    assert "1.75 XCH" in discord["content"] and slack["text"] == discord["content"]
    assert farmer_json["idempotency_key"] == operator_keys[1] and farmer_json["kind"] == "reward-confirmed"
    assert farmer_json["data"] == {"coin_id": coin, "amount": 1_750_000_000_000, "confirmed_height": 70}
    assert farmer_json["launcher_id"] == farmer.launcher_id.hex()
    assert receiver.duplicates("discord") == receiver.duplicates("farmer") == 0


async def test_a_failing_receiver_is_tried_again_alone_then_given_up(
    store: SqlitePoolStore, receiver: WebhookReceiver
) -> None:
    await store.add_notification(NotificationKind.BOOKS_UNBALANCED, "books", {"difference": 1}, NOW)
    config = config_for(receiver, max_attempts=3)
    receiver.failures["slack"] = 1
    assert await deliver_due(store, config, NOW) == 0
    (event,) = await store.notifications()
    assert event.attempts == 1 and event.next_attempt_at == NOW + 10 and "HTTP 503" in (event.last_error or "")
    assert await deliver_due(store, config, NOW + 9) == 0  # not yet due
    assert await deliver_due(store, config, NOW + 10) == 1
    assert receiver.keys("discord") == receiver.keys("slack") == ["books"]
    assert [r.path for r in receiver.received] == ["discord", "slack", "slack"]  # discord had it already

    await store.add_notification(NotificationKind.BOOKS_BALANCED, "never", {"difference": 0}, NOW)
    receiver.failures["discord"] = 3
    for moment in (NOW, NOW + 10, NOW + 30):  # waits of 10 s then 20 s; the third attempt is the last
        await deliver_due(store, config, moment)
    (given_up, _) = await store.notifications()
    assert given_up.done_at == NOW + 30 and given_up.attempts == 2 and await store.notifications_due(NOW + 10**6) == []


async def test_a_farmers_private_webhook_is_not_called_unless_allowed(
    store: SqlitePoolStore, receiver: WebhookReceiver
) -> None:
    farmer = make_farmer(2)
    await store.add_farmer(farmer)
    await store.change_farmer_settings(FarmerSettings(farmer.launcher_id, webhook_url=receiver.url("farmer")), now=1)
    await store.add_notification(
        NotificationKind.FARMER_SILENT, "silent", {}, NOW, launcher_id=farmer.launcher_id, to_operator=False
    )
    strict = NotificationsConfig(allow_private_webhooks=False, retry_after=10)
    assert await deliver_due(store, strict, NOW) == 0
    assert receiver.received == []
    (event,) = await store.notifications()
    assert "WebhookRefused" in (event.last_error or "")
    assert await deliver_due(store, config_for(receiver), NOW + 10) == 1
    assert receiver.keys("farmer") == ["silent"]


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://[::1]/hook",
        "https://169.254.169.254/latest",
        "https://[::ffff:192.168.1.1]/",
        "https://localhost:8443/hook",
        "https://user:secret@example.com/hook",
        "https://example.com:99999/",
        "ftp://example.com/",
        "https:///nohost",
    ],
)
def test_farmers_webhooks_must_be_https_to_a_public_host(url: str) -> None:
    with pytest.raises(WebhookRefused):
        check_webhook_url(url, allow_private=False)


def test_allowed_webhooks() -> None:
    assert (
        check_webhook_url(" https://hooks.example.com/a?b=1 ", allow_private=False) == "https://hooks.example.com/a?b=1"
    )
    assert check_webhook_url("https://8.8.8.8/x", allow_private=False) == "https://8.8.8.8/x"
    assert check_webhook_url("http://127.0.0.1:9/x", allow_private=True) == "http://127.0.0.1:9/x"


async def test_a_name_resolving_to_loopback_is_not_connected_to() -> None:
    resolver = PublicOnlyResolver()
    try:
        with pytest.raises(OSError, match="no public address"):
            await resolver.resolve("localhost", 443)
    finally:
        await resolver.close()


async def test_silent_farmers_are_told_once_per_silence(store: SqlitePoolStore) -> None:
    farmer = make_farmer(3)
    await store.add_farmer(farmer)
    await store.add_partial(make_partial(farmer, "first", NOW))
    config = NotificationsConfig(silent_after_hours=2)
    await check_silent_farmers(store, config, NOW + 7_199)
    assert await store.notifications() == []
    for moment in (NOW + 7_201, NOW + 9_000):
        await check_silent_farmers(store, config, moment)
    await store.add_partial(make_partial(farmer, "back", NOW + 10_000))
    await check_silent_farmers(store, config, NOW + 20_000)
    silences = await store.notifications(kind=NotificationKind.FARMER_SILENT)
    assert [event.payload["last_partial_at"] for event in silences] == [NOW + 10_000, NOW]
    await check_silent_farmers(store, NotificationsConfig(silent_after_hours=0), NOW + 10**6)
    assert len(await store.notifications()) == 2


async def test_many_silences_are_written_a_few_hundred_a_transaction(
    store: SqlitePoolStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of farmers found silent at once (after an outage) were a write transaction each: as many commits
    queued with the partials' group commit."""
    farmers = [make_farmer(seed) for seed in range(150)]
    for farmer in farmers:
        await store.add_farmer(farmer)
        await store.add_partial(make_partial(farmer, farmer.launcher_id.hex(), NOW))
    writes = 0
    write = store._write

    def counted() -> Any:
        nonlocal writes
        writes += 1
        return write()

    monkeypatch.setattr(store, "_write", counted)
    monkeypatch.setattr(sql, "NOTIFICATIONS_PER_WRITE", 100)
    await check_silent_farmers(store, NotificationsConfig(silent_after_hours=2), NOW + 7_201)
    assert writes == 2  # sql.NOTIFICATIONS_PER_WRITE a transaction
    silences = await store.notifications(limit=1000, kind=NotificationKind.FARMER_SILENT)
    assert {event.launcher_id for event in silences} == {farmer.launcher_id for farmer in farmers}
    assert len(silences) == len(farmers)
    assert {(event.to_operator, event.payload["last_partial_at"]) for event in silences} == {(True, NOW)}
    await check_silent_farmers(store, NotificationsConfig(silent_after_hours=2), NOW + 9_000)
    assert writes == 2  # told once: nothing new to write


async def test_a_pass_of_events_that_go_nowhere_opens_no_client_and_reads_webhooks_once(
    store: SqlitePoolStore, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of silences told after an outage, most farmers without a webhook: a look-up of each farmer's
    settings per event, and two HTTP clients made each pass, for events that go nowhere."""
    quiet = [make_farmer(seed) for seed in range(20)]
    hooked = make_farmer(50)
    for farmer in (*quiet, hooked):
        await store.add_farmer(farmer)
        await store.add_partial(make_partial(farmer, farmer.launcher_id.hex(), NOW))
    reads = 0
    webhooks = store.farmer_webhooks

    async def counted(launcher_ids: Any) -> dict[Any, str]:
        nonlocal reads
        reads += 1
        return await webhooks(launcher_ids)

    async def one_by_one(launcher_id: Any) -> None:
        raise AssertionError("a look-up per event")

    made: list[bool] = []
    make = notifications.webhook_session

    def made_client(timeout: float, public_only: bool) -> Any:
        made.append(public_only)
        return make(timeout, public_only)

    monkeypatch.setattr(store, "farmer_webhooks", counted)
    monkeypatch.setattr(store, "farmer_settings", one_by_one)
    monkeypatch.setattr(notifications, "webhook_session", made_client)
    silent = NotificationsConfig(silent_after_hours=2)
    await check_silent_farmers(store, silent, NOW + 7_201)
    later = NOW + 7_300
    assert await deliver_due(store, silent, later) == 21  # no destination anywhere: each closed, nothing sent
    assert (reads, made) == (1, [])
    await store.change_farmer_settings(FarmerSettings(hooked.launcher_id, webhook_url=receiver.url("farmer")), now=NOW)
    await store.add_partial(make_partial(hooked, "back", NOW + 8_000))
    config = NotificationsConfig(silent_after_hours=2, allow_private_webhooks=True)
    await check_silent_farmers(store, config, NOW + 16_000)
    assert await deliver_due(store, config, NOW + 16_100) == 1
    assert (reads, made) == (2, [False])  # the farmer's webhook, through one client (private ones allowed)
    assert receiver.keys("farmer") == [f"farmer-silent:{hooked.launcher_id.hex()}:{NOW + 8_000}"]


async def test_unbalanced_books_are_told_once_and_their_return(store: SqlitePoolStore, tmp_path: Path) -> None:
    farmer = make_farmer(4)
    await store.add_farmer(farmer)
    await credit(store, farmer, "coin", 1000)
    await check_books(store, NOW)
    assert await store.notifications(kind=NotificationKind.BOOKS_UNBALANCED) == []
    # A mojo appears from nowhere (a hand edit of the database): the books no longer balance.
    with sqlite3.connect(tmp_path / "pool.sqlite") as db:
        db.execute("UPDATE farmers SET owed = owed + 1 WHERE launcher_id = ?", (bytes(farmer.launcher_id),))
    for moment in (NOW + 1, NOW + 2):
        await check_books(store, moment)
    with sqlite3.connect(tmp_path / "pool.sqlite") as db:
        db.execute("UPDATE farmers SET owed = owed - 1 WHERE launcher_id = ?", (bytes(farmer.launcher_id),))
    for moment in (NOW + 3, NOW + 4):
        await check_books(store, moment)
    told = [(event.kind, event.payload) for event in reversed(await store.notifications(kind=None))]
    books = [entry for entry in told if entry[0].value.startswith("books")]
    assert books == [
        (NotificationKind.BOOKS_UNBALANCED, {"difference": 1}),
        (NotificationKind.BOOKS_BALANCED, {"difference": 0}),
    ]


def test_the_notifications_section_is_checked(tmp_path: Path) -> None:
    from tests.config.test_config import example

    document = example()
    document["notifications"] = {
        "operator_webhooks": ["https://hooks.example.com/a", {"url": "https://discord.com/api/x", "format": "discord"}],
        "allow_private_webhooks": True,
        "silent_after_hours": 3,
    }
    notifications = parse_config(document, tmp_path).notifications
    assert [hook.format for hook in notifications.operator_webhooks] == ["json", "discord"]
    assert notifications.silent_after_hours == 3 and notifications.allow_private_webhooks
    document["notifications"] = {"operator_webhooks": [{"url": "https://x", "format": "teams"}]}
    with pytest.raises(ConfigError, match=r"notifications.operator_webhooks\[0\].format"):
        parse_config(document, tmp_path)


async def test_a_receiver_that_fails_is_asked_once_a_pass(store: SqlitePoolStore, receiver: WebhookReceiver) -> None:
    for number in range(3):
        await store.add_notification(NotificationKind.BOOKS_BALANCED, f"event {number}", {}, NOW)
    receiver.failures["discord"] = 1
    assert await deliver_due(store, config_for(receiver), NOW) == 0
    assert [r.path for r in receiver.received].count("discord") == 1  # the two other events did not wait for it
    assert receiver.keys("slack") == ["event 0", "event 1", "event 2"]
    assert await deliver_due(store, config_for(receiver), NOW + 10) == 3
    assert receiver.keys("discord") == ["event 0", "event 1", "event 2"]
