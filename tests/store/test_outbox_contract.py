"""The store's outbox of notifications and the farmers' settings, on SQLite and PostgreSQL (the contract's ``store``
fixture): every event is written by the transaction that makes the change it tells, once per event, and its
deliveries are recorded per destination."""

from __future__ import annotations

import pytest

from pool.store import sql
from pool.store.abstract import AbstractPoolStore, FarmerNotFound
from pool.store.models import FarmerSettings, NewNotification, Notification, NotificationKind
from tests.store.test_store_contract import (
    add_farmers,
    credit,
    farmer_payment,
    fee_payment,
    fund,
    h,
    make_claim,
    make_farmer,
    make_partial,
    make_round,
)


def keys(notifications: list[Notification]) -> list[str]:
    return sorted(n.idempotency_key for n in notifications)


async def test_claims_write_block_won_and_reward_confirmed_once(store: AbstractPoolStore) -> None:
    (farmer,) = await add_farmers(store, 0)
    await credit(store, farmer, "coin a", 1750)
    due = await store.notifications_due(now=10**10)
    coin = h("coin a").hex()
    assert keys(due) == [f"block-won:{coin}", f"reward-confirmed:{coin}"]
    won = next(n for n in due if n.kind is NotificationKind.BLOCK_WON)
    assert won.launcher_id == farmer.launcher_id and won.to_operator
    assert won.payload == {"coin_id": coin, "amount": 1750, "height": 50}
    assert won.attempts == 0 and won.done_at is None and won.delivered_to == frozenset()
    # A second write of the same event (the same key) is ignored.
    assert not await store.add_notification(NotificationKind.BLOCK_WON, f"block-won:{coin}", {}, 5)
    assert len(await store.notifications()) == 2


async def test_batches_write_an_event_for_the_operator_and_one_per_farmer(store: AbstractPoolStore) -> None:
    first, second = await add_farmers(store, 0, 0)
    await fund(store, [(first, 600), (second, 400)], pool_fee=50)
    payments = [farmer_payment(first, 600), farmer_payment(second, 400), fee_payment(50)]
    round_id = await store.create_payout_round(make_round(1000, pool_fee=50), payments, [0])
    (batch,) = await store.batches(round_id)
    assert batch.id is not None
    await store.mark_batch_submitted(batch.id, h("tx"), b"bundle", now=6_000, height=100)
    sent = await store.notifications(kind=NotificationKind.PAYOUT_SENT)
    assert keys(sent) == sorted(
        [f"payout-sent:{batch.id}"] + [f"payout-sent:{batch.id}:{f.launcher_id.hex()}" for f in (first, second)]
    )
    by_farmer = {n.launcher_id: n for n in sent}
    assert by_farmer[None].to_operator and by_farmer[None].payload["amount"] == 1050
    assert not by_farmer[first.launcher_id].to_operator and by_farmer[first.launcher_id].payload["amount"] == 600
    assert by_farmer[second.launcher_id].payload["tx_id"] == h("tx").hex()
    await store.mark_batch_confirmed(batch.id, height=120, now=6_100)
    confirmed = await store.notifications(kind=NotificationKind.PAYOUT_CONFIRMED)
    assert len(confirmed) == 3 and all(n.payload["confirmed_height"] == 120 for n in confirmed)


async def test_a_failed_claim_claimed_again_is_not_a_second_block(store: AbstractPoolStore) -> None:
    from pool.store.models import ClaimStatus

    (farmer,) = await add_farmers(store, 0)
    assert await store.add_reward_claim(make_claim("coin b", farmer))
    await store.update_reward_claim(h("coin b"), ClaimStatus.FAILED, error="dropped")
    assert await store.add_reward_claim(make_claim("coin b", farmer))
    assert len(await store.notifications(kind=NotificationKind.BLOCK_WON)) == 1


async def test_payout_instruction_changes_are_events_and_same_ones_are_not(store: AbstractPoolStore) -> None:
    (farmer,) = await add_farmers(store, 0)
    await store.update_farmer_settings(farmer.launcher_id, payout_instructions=(h("new").hex(), h("new")))
    await store.update_farmer_settings(farmer.launcher_id, payout_instructions=(h("new").hex().upper(), h("new")))
    await store.update_farmer_settings(farmer.launcher_id, payout_instructions=(h("newer").hex(), h("newer")))
    changes = await store.notifications(kind=NotificationKind.PAYOUT_INSTRUCTIONS_CHANGED)
    assert [n.payload["new"] for n in changes] == [h("newer").hex(), h("new").hex()]
    assert len({n.idempotency_key for n in changes}) == 2


async def test_the_keys_of_events_held_are_found(store: AbstractPoolStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sql, "ROWS_PER_STATEMENT", 2)  # more keys than one statement reads
    for key in ("a", "b", "c"):
        assert await store.add_notification(NotificationKind.BOOKS_BALANCED, key, {}, now=100)
    assert await store.notification_keys(["c", "x", "a", "b", "a"]) == {"a", "b", "c"}
    assert await store.notification_keys(["x"]) == await store.notification_keys([]) == set()


async def test_deliveries_are_recorded_per_destination_and_attempts_counted(store: AbstractPoolStore) -> None:
    assert await store.add_notification(
        NotificationKind.BOOKS_UNBALANCED, "books-unbalanced:100", {"difference": 5}, now=100
    )
    (event,) = await store.notifications_due(now=100)
    assert await store.notifications_due(now=99) == []
    await store.record_delivery(event.id, "operator:0", now=101)
    await store.record_delivery(event.id, "operator:0", now=102)  # recorded twice: nothing changes
    await store.finish_attempt(event.id, now=101, retry_at=130, error="farmer: HTTP 503")
    assert await store.notifications_due(now=129) == []
    (again,) = await store.notifications_due(now=130)
    assert again.delivered_to == {"operator:0"} and again.attempts == 1 and again.last_error == "farmer: HTTP 503"
    await store.finish_attempt(event.id, now=131, retry_at=None, error=None)
    assert await store.notifications_due(now=10**10) == []
    (done,) = await store.notifications()
    assert done.done_at == 131 and done.payload == {"difference": 5}


async def test_delivered_events_are_closed_together_and_closed_ones_kept(
    store: AbstractPoolStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "ROWS_PER_STATEMENT", 2)  # more events than one statement closes
    for number in range(5):
        assert await store.add_notification(NotificationKind.BOOKS_BALANCED, f"event {number}", {}, now=100)
    events = sorted(await store.notifications(), key=lambda event: event.id)
    await store.finish_attempt(events[0].id, now=150, retry_at=None, error="given up")
    await store.finish_attempt(events[1].id, now=150, retry_at=200, error="farmer: HTTP 503")
    await store.close_notifications([events[0].id, events[1].id, events[2].id, events[3].id, 10**9], now=300)
    await store.close_notifications([], now=400)
    closed = {event.idempotency_key: (event.done_at, event.last_error) for event in await store.notifications()}
    assert closed == {
        "event 0": (150, "given up"),  # closed before: as it was
        "event 1": (300, None),  # delivered after a failed attempt
        "event 2": (300, None),
        "event 3": (300, None),
        "event 4": (None, None),  # not among them: still open
    }
    assert [event.idempotency_key for event in await store.notifications_due(now=10**10)] == ["event 4"]


async def test_detected_events_are_written_many_at_once_each_once(store: AbstractPoolStore) -> None:
    (farmer,) = await add_farmers(store, 0)
    assert await store.add_notification(NotificationKind.BOOKS_BALANCED, "told before", {"first": True}, now=100)
    events = [
        NewNotification(NotificationKind.FARMER_SILENT, f"silence {n}", {"n": n}, farmer.launcher_id, to_operator=False)
        for n in range(450)  # more than one transaction's worth (sql.NOTIFICATIONS_PER_WRITE)
    ]
    again = NewNotification(NotificationKind.BOOKS_BALANCED, "told before", {"first": False})
    await store.add_notifications([*events[:300], again, *events[300:], events[0]], now=200)
    held = await store.notifications(limit=1000)
    assert keys(held) == sorted(["told before"] + [event.idempotency_key for event in events])
    by_key = {event.idempotency_key: event for event in held}
    assert by_key["told before"].payload == {"first": True} and by_key["told before"].created_at == 100
    silence = by_key["silence 7"]
    assert (silence.kind, silence.launcher_id, silence.to_operator) == (
        NotificationKind.FARMER_SILENT,
        farmer.launcher_id,
        False,
    )
    assert (silence.payload, silence.created_at, silence.next_attempt_at, silence.done_at) == ({"n": 7}, 200, 200, None)
    assert len(await store.notifications_due(now=200, limit=1000)) == 451
    await store.add_notifications([], now=300)  # nothing to write: nothing written


async def test_farmer_webhooks_are_those_farmers_set(store: AbstractPoolStore) -> None:
    hooked, plain, cleared = await add_farmers(store, 0, 0, 0)
    await store.change_farmer_settings(FarmerSettings(hooked.launcher_id, webhook_url="https://a/hook"), now=1_000)
    await store.change_farmer_settings(FarmerSettings(plain.launcher_id, min_payout=10**12), now=1_000)
    await store.change_farmer_settings(FarmerSettings(cleared.launcher_id, webhook_url="https://b/hook"), now=1_000)
    await store.change_farmer_settings(FarmerSettings(cleared.launcher_id), now=1_001)
    unknown = make_farmer(7).launcher_id
    asked = [hooked.launcher_id, plain.launcher_id, cleared.launcher_id, unknown]
    assert await store.farmer_webhooks(asked) == {hooked.launcher_id: "https://a/hook"}
    assert await store.farmer_webhooks([plain.launcher_id]) == {}
    assert await store.farmer_webhooks([]) == {}


async def test_last_partial_times_are_per_member_farmer(store: AbstractPoolStore) -> None:
    active, quiet = await add_farmers(store, 0, 0)
    leaver = make_farmer(9, member=False)
    await store.add_farmer(leaver)
    for farmer, times in ((active, (300, 500)), (leaver, (400,))):
        for number, received_at in enumerate(times):
            await store.add_partial(make_partial(farmer, f"{farmer.launcher_id.hex()} {number}", received_at))
    assert await store.last_partial_times() == {active.launcher_id: 500}
    assert quiet.launcher_id not in await store.last_partial_times()
    # Only the silent ones, when asked: a latest partial at or after the cutoff is left out.
    assert await store.last_partial_times(before=501) == {active.launcher_id: 500}
    assert await store.last_partial_times(before=500) == {}


async def test_farmer_settings_changes_are_kept_each_once(store: AbstractPoolStore) -> None:
    (farmer,) = await add_farmers(store, 0)
    assert await store.farmer_settings(farmer.launcher_id) == FarmerSettings(farmer.launcher_id)
    chosen = FarmerSettings(farmer.launcher_id, min_payout=10**12, difficulty_preset=50, webhook_url="https://a/b")
    changes = await store.change_farmer_settings(chosen, now=1_000)
    assert [(c.kind.value, c.old, c.new) for c in changes] == [
        ("min_payout", None, str(10**12)),
        ("difficulty_preset", None, "50"),
        ("webhook_url", None, "https://a/b"),
    ]
    assert await store.change_farmer_settings(chosen, now=1_001) == []  # nothing changed: nothing recorded
    later = FarmerSettings(farmer.launcher_id, min_payout=10**12, difficulty_preset=None, webhook_url="https://a/b")
    await store.change_farmer_settings(later, now=1_002)
    assert await store.farmer_settings(farmer.launcher_id) == FarmerSettings(
        farmer.launcher_id, min_payout=10**12, webhook_url="https://a/b", updated_at=1_002
    )
    assert await store.all_farmer_settings() == {farmer.launcher_id: await store.farmer_settings(farmer.launcher_id)}
    history = await store.setting_changes(farmer.launcher_id)
    assert [(c.at, c.kind.value, c.new) for c in history][:2] == [
        (1_002, "difficulty_preset", None),
        (1_000, "webhook_url", "https://a/b"),
    ]
    assert len(history) == 4
    # They are the farmer's history, with what else happened to it (its join), in one place.
    assert await store.farmer_history(farmer.launcher_id) == [
        *history,
        *(await store.farmer_history(farmer.launcher_id))[4:],
    ]
    assert [c.kind.value for c in await store.farmer_history(farmer.launcher_id)][4:] == ["joined"]
    with pytest.raises(FarmerNotFound):
        await store.change_farmer_settings(FarmerSettings(h("nobody"), min_payout=1), now=1_003)


async def test_closed_events_are_pruned_and_open_ones_kept(store: AbstractPoolStore) -> None:
    for number in range(3):
        assert await store.add_notification(NotificationKind.BOOKS_BALANCED, f"event {number}", {}, now=100)
    first, second, _ = sorted(await store.notifications(), key=lambda event: event.id)
    await store.record_delivery(first.id, "operator:0", now=150)
    await store.finish_attempt(first.id, now=200, retry_at=None, error=None)
    await store.finish_attempt(second.id, now=300, retry_at=None, error=None)
    assert await store.prune_notifications(before=300) == 1  # the second closed at 300, not before
    assert keys(await store.notifications()) == ["event 1", "event 2"]
    assert await store.prune_notifications(before=10**10, batch=10) == 1  # the third is still open
    assert keys(await store.notifications()) == ["event 2"]
    assert await store.prune_notifications(before=10**10) == 0
