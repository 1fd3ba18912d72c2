"""The outbox's SQL: events written inside the transaction of the change they tell, for sql.py's methods.

An event is a row of ``notifications`` named by its idempotency key, which says which event it is (``block-won:<coin
id>``, ``payout-confirmed:<batch id>``): a second write of the same event, by a retried or repeated transaction, is
ignored. The leader's notification loop (pool/loops/notifications.py) delivers each at least once to each destination
and sends its key along, so a receiver that remembers the keys it accepted sees every event once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from pool.chia_adapter import bytes32
from pool.store.models import (
    FarmerChange,
    FarmerChangeKind,
    FarmerSettings,
    NewNotification,
    Notification,
    NotificationKind,
)
from pool.store.rows import Row, optional_bytes32


class Tx(Protocol):
    """The statements of one write transaction (sql.py's Statements)."""

    async def fetchone(self, sql: str, params: Any = None) -> Row | None: ...

    async def fetchall(self, sql: str, params: Any = None) -> list[Row]: ...

    async def execute(self, sql: str, params: Any = None) -> int: ...

    async def executemany(self, sql: str, rows: Sequence[Any]) -> None: ...


_INSERT_ANY = """
INSERT INTO notifications (idempotency_key, kind, launcher_id, to_operator, payload, created_at, next_attempt_at)
VALUES (:key, :kind, :launcher_id, :to_operator, :payload, :now, :now)
ON CONFLICT (idempotency_key) DO NOTHING
"""
_INSERT = _INSERT_ANY + "RETURNING id\n"


async def enqueue(
    tx: Tx,
    kind: NotificationKind,
    key: str,
    payload: dict[str, object],
    now: int,
    *,
    launcher_id: bytes32 | None = None,
    to_operator: bool = True,
) -> bool:
    """Write an event; False if one of that key is there already (it is the same event)."""
    event = NewNotification(kind, key, payload, launcher_id, to_operator)
    return await tx.fetchone(_INSERT, _insert_params(event, now)) is not None


async def enqueue_many(tx: Tx, events: Sequence[NewNotification], now: int) -> None:
    """Write events as one batch of statements; an event whose key the outbox holds already is left as it is."""
    await tx.executemany(_INSERT_ANY, [_insert_params(event, now) for event in events])


def _insert_params(event: NewNotification, now: int) -> dict[str, object]:
    return {
        "key": event.idempotency_key,
        "kind": event.kind.value,
        "launcher_id": event.launcher_id,
        "to_operator": event.to_operator,
        "payload": json.dumps(event.payload, sort_keys=True),
        "now": now,
    }


async def enqueue_batch_events(tx: Tx, kind: NotificationKind, batch_id: int, now: int, **details: object) -> None:
    """A batch was sent or confirmed: one event for the operator, and one for each farmer it pays (to that farmer
    only: the operator's channel would get one message per farmer)."""
    batch = await tx.fetchone(
        "SELECT round_id, batch_index, tx_id FROM payment_batches WHERE id = :id", {"id": batch_id}
    )
    if batch is None:  # pragma: no cover - the caller just moved it
        return
    payments = await tx.fetchall(
        "SELECT launcher_id, amount, puzzle_hash FROM payments WHERE round_id = :round_id AND batch_index = :index "
        "ORDER BY id",
        {"round_id": batch["round_id"], "index": batch["batch_index"]},
    )
    tx_id = None if batch["tx_id"] is None else bytes(batch["tx_id"]).hex()
    common = {"batch_id": batch_id, "round_id": int(batch["round_id"]), "tx_id": tx_id, **details}
    total = sum(int(row["amount"]) for row in payments)
    base_key = f"{kind.value}:{batch_id}"
    await enqueue(tx, kind, base_key, {**common, "amount": total, "payments": len(payments)}, now)
    for row in payments:
        launcher_id = optional_bytes32(row["launcher_id"])
        if launcher_id is None:
            continue  # the pool fee's addition
        payload = {**common, "amount": int(row["amount"]), "puzzle_hash": bytes(row["puzzle_hash"]).hex()}
        await enqueue(
            tx, kind, f"{base_key}:{launcher_id.hex()}", payload, now, launcher_id=launcher_id, to_operator=False
        )


async def enqueue_instructions_change(tx: Tx, launcher_id: bytes32, old: str, new: str, now_ms: int) -> None:
    """The farmer's payout instructions changed (compared as the farmer compares them, case-insensitive): the event
    is the change of that farmer, at that moment, to those instructions."""
    if old.lower() == new.lower():
        return
    kind = NotificationKind.PAYOUT_INSTRUCTIONS_CHANGED
    key = f"{kind.value}:{launcher_id.hex()}:{now_ms}:{new.lower()}"
    await enqueue(tx, kind, key, {"old": old, "new": new}, now_ms // 1000, launcher_id=launcher_id)


def notification_from_row(row: Row, delivered_to: Sequence[str] = ()) -> Notification:
    payload = json.loads(row["payload"])
    return Notification(
        id=int(row["id"]),
        idempotency_key=str(row["idempotency_key"]),
        kind=NotificationKind(row["kind"]),
        launcher_id=optional_bytes32(row["launcher_id"]),
        to_operator=bool(row["to_operator"]),
        payload=payload if isinstance(payload, dict) else {},
        created_at=int(row["created_at"]),
        attempts=int(row["attempts"]),
        next_attempt_at=int(row["next_attempt_at"]),
        done_at=None if row["done_at"] is None else int(row["done_at"]),
        last_error=row["last_error"],
        delivered_to=frozenset(delivered_to),
    )


def settings_from_row(row: Row) -> FarmerSettings:
    return FarmerSettings(
        launcher_id=bytes32(row["launcher_id"]),
        min_payout=None if row["min_payout"] is None else int(row["min_payout"]),
        difficulty_preset=None if row["difficulty_preset"] is None else int(row["difficulty_preset"]),
        webhook_url=row["webhook_url"],
        updated_at=int(row["updated_at"]),
    )


SETTINGS = ("min_payout", "difficulty_preset", "webhook_url")


def setting_changes(old: FarmerSettings, new: FarmerSettings, now: int) -> list[FarmerChange]:
    """What differs between two settings of a farmer, as changes made at ``now``."""
    changes = []
    for name in SETTINGS:
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            changes.append(
                FarmerChange(
                    new.launcher_id,
                    now,
                    FarmerChangeKind(name),
                    None if before is None else str(before),
                    None if after is None else str(after),
                )
            )
    return changes
