"""``python -m pool migrate-store``: an SQLite pool with a history moves to a real PostgreSQL and goes on from there."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml

from pool.devnet.postgres import PostgresServer
from pool.store import sqlite_schema
from pool.store.abstract import AbstractPoolStore, StoreMigrated
from pool.store.models import BatchStatus, ClaimStatus, DistributionShare, FarmerSettings, TargetProof, WebSession
from pool.store.postgres import PostgresPoolStore, TargetNotEmpty
from pool.store.postgres_schema import TABLES
from pool.store.sqlite import SqlitePoolStore
from tests.store.test_store_contract import (
    add_farmers,
    credit,
    distribution,
    farmer_payment,
    fee_payment,
    h,
    make_claim,
    make_farmer,
    make_partial,
    make_round,
)

REPO = Path(__file__).resolve().parents[2]


async def populate(store: AbstractPoolStore) -> None:
    """Farmers, partials of every status (one of them pruned), claims (confirmed, failed, in flight, with fees), a
    distribution, a done round (its cheaper transaction landed) and an open round with one batch submitted."""
    farmers = await add_farmers(store, 0, 0, 0)
    await store.add_farmer(make_farmer(9, member=False))
    for number, farmer in enumerate(farmers):
        confirmed = await store.add_partial(make_partial(farmer, f"confirmed {number}", 100 + number))
        rejected = await store.add_partial(make_partial(farmer, f"rejected {number}", 200 + number))
        await store.add_partial(make_partial(farmer, f"pending {number}", 300 + number))
        assert confirmed is not None and rejected is not None
        assert await store.confirm_partial(confirmed)
        assert await store.reject_partial(rejected, "too late")
        await store.add_partial_refusal(farmer.launcher_id, 250 + number, "PROOF_NOT_GOOD_ENOUGH")
    assert await store.prune_partials(3600, batch=1) == 1  # one settled partial of hour 0 counted in partial_hours
    await store.add_session(
        WebSession(h("session"), farmers[0].launcher_id, created_at=5_000, expires_at=9_000),
        authentication_public_key=farmers[0].authentication_public_key,
        max_per_launcher=10,
    )
    await credit(store, farmers[0], "coin 1", 10_000)
    shares = [(farmers[0], 4_000, 10), (farmers[1], 2_000, 10), (farmers[2], 2_000, 0)]
    await store.distribute(
        distribution(8_000, pool_fee=1_000),
        [DistributionShare(f.launcher_id, amount, points=p) for f, amount, p in shares],
    )
    assert await store.add_reward_claim(make_claim("coin 2", farmers[1], fee=5), fee_coins=[h("fee coin 2")])
    await store.update_reward_claim(h("coin 2"), ClaimStatus.FAILED, error="reorged away")
    assert await store.add_reward_claim(make_claim("coin 3", farmers[2], fee=3), fee_coins=[h("fee coin 3")])

    done = await store.create_payout_round(
        make_round(3_000, pool_fee=100, batch_fees=[10]), [farmer_payment(farmers[0], 3_000), fee_payment(100)], [10]
    )
    (batch,) = await store.batches(done)
    assert batch.id is not None
    await store.mark_batch_submitted(batch.id, h("tx 1"), b"bundle 1", now=6_000, height=100)
    await store.mark_batch_confirmed(batch.id, height=104, now=6_100, fee_paid=7)

    payments = [farmer_payment(farmers[1], 1_000, 0), farmer_payment(farmers[2], 1_000, 1)]
    still_open = await store.create_payout_round(make_round(2_000, 0, [2, 2], created_at=7_000), payments, [2, 2])
    first, _ = await store.batches(still_open)
    assert first.id is not None
    await store.mark_batch_submitted(first.id, h("tx 2"), b"bundle 2", now=7_100, height=120, coins=[h("coin a")])
    await store.take_leadership("the old pool")
    await store.record_target_proof(
        TargetProof(h("target"), "txch1target", 42, b"public key", b"signature", "mode", "message", proven_at=7_200)
    )
    # Notifications (one delivered somewhere) and a farmer's settings with their history.
    (event, *_) = await store.notifications_due(now=10**10)
    await store.record_delivery(event.id, "farmer", now=7_300)
    await store.change_farmer_settings(FarmerSettings(farmers[0].launcher_id, min_payout=5_000), now=7_400)
    await store.pool_secret("v2 tokens", b"\x05" * 32, now=7_300)


async def everything(store: AbstractPoolStore) -> dict[str, object]:
    """All a store holds, through its public methods."""
    rounds = await store.rounds()
    distributions = await store.distributions()
    partials = []
    for farmer in await store.list_farmers():
        partials += await store.recent_partials(farmer.launcher_id, since=0)
    return {
        "pool secret": await store.pool_secret("v2 tokens", b"another", now=0),
        "farmers": await store.list_farmers(),
        "partials": partials,
        "claims": await store.reward_claims(),
        "distributions": distributions,
        "shares": [await store.distribution_shares(d.id or 0) for d in distributions],
        "rounds": rounds,
        "open round": await store.open_round(),
        "batches": [await store.batches(r.id or 0) for r in rounds],
        "payments": await store.payments(),
        "journal": await store.ledger_entries(),
        "ledger": await store.ledger(),
        "partial counts": await store.partial_counts(0),
        "confirmed points": await store.confirmed_points_since(0),
        "session": await store.get_session(h("session"), now=5_001),
        "versions": [await store.batch_versions(b.id or 0) for r in rounds for b in await store.batches(r.id or 0)],
        "claim fee versions": [await store.claim_fee_versions(c.coin_id) for c in await store.reward_claims()],
        "reserved": await store.reserved_coins(),
        "epoch": await store.leader_epoch(),
        "target proof": await store.target_proof(h("target")),
        "notifications": await store.notifications(limit=1000),
        "farmer settings": await store.all_farmer_settings(),
        "setting changes": await store.setting_changes(h("launcher 1")),
    }


@pytest.fixture
async def sqlite_pool(tmp_path: Path) -> AsyncIterator[Path]:
    path = tmp_path / "pool-data" / "pool.sqlite"
    path.parent.mkdir()
    store = SqlitePoolStore(path)
    await store.open()
    await populate(store)
    await store.close()
    yield path


@pytest.fixture
def empty_database(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"pool_migrate_{abs(hash(request.node.nodeid))}"
    yield postgres_server.create_database(name)
    postgres_server.drop_database(name)


def source_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as connection:
        return {table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES}


async def test_a_pool_with_a_history_moves_and_goes_on(sqlite_pool: Path, empty_database: str) -> None:
    from pool.store.migrate import migrate_sqlite_to_postgres

    source = SqlitePoolStore(sqlite_pool)
    await source.open()
    before = await everything(source)
    await source.close()
    result = await migrate_sqlite_to_postgres(sqlite_pool, PostgresPoolStore(empty_database))
    assert result.rows == source_counts(sqlite_pool)
    assert all(result.rows[table] > 0 for table in TABLES)
    assert result.ledger.balanced
    # The source is marked as moved: a pool started with the old configuration refuses to run on it.
    with pytest.raises(StoreMigrated, match="moved to"):
        await SqlitePoolStore(sqlite_pool).open()

    target = PostgresPoolStore(empty_database)
    await target.open()
    try:
        assert await everything(target) == before
        assert await target.table_counts() == result.rows

        # The pool goes on from where it was: new ids after the copied ones, the open round completes.
        farmer = (await target.list_farmers())[0]
        new_id = await target.add_partial(make_partial(farmer, "after the move", 400))
        copied = before["partials"]
        assert isinstance(copied, list) and new_id is not None and new_id > max(p.id or 0 for p in copied)
        # Its confirmation adds to the copied hourly counts the PPLNS window reads.
        points = await target.confirmed_points_since(0)
        assert await target.confirm_partials([new_id]) == [new_id]
        points[farmer.launcher_id] = points.get(farmer.launcher_id, 0) + farmer.difficulty
        assert await target.confirmed_points_since(0) == points
        open_round = await target.open_round()
        assert open_round is not None and open_round.id is not None
        first, second = await target.batches(open_round.id)
        assert (first.status, second.status) == (BatchStatus.SUBMITTED, BatchStatus.PENDING)
        assert first.id is not None and second.id is not None
        await target.mark_batch_confirmed(first.id, height=125, now=7_200)
        await target.mark_batch_submitted(second.id, h("tx 3"), b"bundle 3", now=7_300, height=126)
        await target.mark_batch_confirmed(second.id, height=130, now=7_400)
        assert await target.open_round() is None
        assert (await target.ledger()).balanced
        assert await target.take_leadership("the new pool") == 2  # epochs go on from the old pool's
    finally:
        await target.close()


async def test_a_database_that_holds_pool_data_is_refused_and_left_as_it_was(
    sqlite_pool: Path, empty_database: str
) -> None:
    from pool.store.migrate import migrate_sqlite_to_postgres

    target = PostgresPoolStore(empty_database)
    await target.open()
    await target.add_farmer(make_farmer(42))
    before = await everything(target)
    await target.close()

    with pytest.raises(TargetNotEmpty, match="already holds pool data"):
        await migrate_sqlite_to_postgres(sqlite_pool, PostgresPoolStore(empty_database))
    await target.open()
    try:
        assert await everything(target) == before
    finally:
        await target.close()


def run_pool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pool", *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_command_moves_the_pool_once_and_refuses_a_second_time(
    sqlite_pool: Path, empty_database: str, tmp_path: Path
) -> None:
    data = yaml.safe_load((REPO / "config.yaml").read_text())
    data["store"] = {"backend": "sqlite", "path": str(sqlite_pool)}
    config = tmp_path / "old.yaml"
    config.write_text(yaml.safe_dump(data))

    moved = run_pool("migrate-store", "--config", str(config), "--to", empty_database)
    assert moved.returncode == 0, moved.stderr
    assert "ledger balanced" in moved.stdout
    assert f"{source_counts(sqlite_pool)['partials']} rows copied" in moved.stdout

    again = run_pool("migrate-store", "--config", str(config), "--to", empty_database)
    assert again.returncode == 1
    assert "was moved to" in again.stderr and "nothing was migrated" in again.stderr
    books = run_pool("ledger", "--config", str(config), "--no-wallet")
    assert books.returncode == 1 and "was moved to" in books.stderr and "Traceback" not in books.stderr

    with_password = run_pool(
        "migrate-store", "--config", str(config), "--to", empty_database.replace("pool@", "pool:hunter2@")
    )
    assert with_password.returncode == 2
    assert "--to" in with_password.stderr and "hunter2" not in with_password.stderr


async def test_a_store_upgraded_across_step_25_moves_with_its_older_keys(tmp_path: Path, empty_database: str) -> None:
    """Partials recorded before schema step 25 keep their keys (a proof's whole hash) in the store and in its move to
    PostgreSQL, whose check of a new partial's key is off during the copy and on again after it."""
    from pool.store.migrate import migrate_sqlite_to_postgres

    path = tmp_path / "pool.sqlite"
    before_step = SqlitePoolStore(path, migrations=sqlite_schema.MIGRATIONS[:-1])
    await before_step.open()
    farmer = make_farmer(1)
    await before_step.add_farmer(farmer)
    old_key = dataclasses.replace(make_partial(farmer, "recorded long ago", 100), proof_hash=h("a whole proof hash"))
    assert await before_step.add_partial(old_key) is not None
    await before_step.close()
    upgraded = SqlitePoolStore(path)
    await upgraded.open()
    await upgraded.close()

    await migrate_sqlite_to_postgres(path, PostgresPoolStore(empty_database))
    target = PostgresPoolStore(empty_database)
    await target.open()
    try:
        assert [p.proof_hash for p in await target.recent_partials(farmer.launcher_id, since=0)] == [old_key.proof_hash]
        keyed_the_old_way = dataclasses.replace(make_partial(farmer, "new", 200), proof_hash=h("another whole hash"))
        with pytest.raises(Exception, match="proof key must start with its signage point"):
            await target.add_partial(keyed_the_old_way)
        assert await target.add_partial(make_partial(farmer, "new", 200)) is not None
    finally:
        await target.close()
