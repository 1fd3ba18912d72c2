"""The difficulty loop against a real SQLite store: it moves a busy farmer up, a silent one down, and never
overrides a difficulty the farmer asked for with PUT /farmer. The loop touches no chain, so no node is started."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from chia_rs import Program

from pool.chia_adapter import AugSchemeMPL, Coin, CoinSpend, PoolState, bytes32, std_hash, uint8, uint32, uint64
from pool.config import parse_config
from pool.context import PoolContext
from pool.loops import difficulty_adjustment
from pool.loops.difficulty_adjustment import DifficultyLoop
from pool.protocol.partials import proof_key
from pool.store.models import FarmerRecord, PartialRecord, PendingDifficulty
from pool.store.sqlite import SqlitePoolStore

REPO = Path(__file__).resolve().parents[2]
NOW = 10_000_000
DAY = 86_400  # time_target of the example config; 300 partials a day is one every 288 s


def farmer(seed: bytes, difficulty: int) -> FarmerRecord:
    coin = Coin(std_hash(seed + b"parent"), std_hash(seed + b"puzzle"), uint64(1))
    key = AugSchemeMPL.key_gen(std_hash(seed)).get_g1()
    state = PoolState(uint8(1), uint8(3), std_hash(b"pool"), key, "http://pool", uint32(100))
    return FarmerRecord(
        launcher_id=bytes32(std_hash(seed)),
        p2_singleton_puzzle_hash=bytes32(std_hash(seed + b"p2")),
        delay_time=604800,
        delay_puzzle_hash=bytes32(std_hash(seed + b"delay")),
        authentication_public_key=key,
        singleton_tip=CoinSpend(coin, Program.to(1), Program.to(0)),
        singleton_tip_state=state,
        difficulty=difficulty,
        payout_instructions=std_hash(seed + b"payout").hex(),
        payout_puzzle_hash=bytes32(std_hash(seed + b"payout")),
        is_pool_member=True,
        points=0,
        joined_at=NOW - 10 * DAY,
    )


def partial(owner: FarmerRecord, number: int, received_at: int) -> PartialRecord:
    return PartialRecord(
        launcher_id=owner.launcher_id,
        proof_hash=proof_key(
            bytes32(std_hash(b"sp")), bytes32(std_hash(owner.launcher_id + number.to_bytes(4, "big")))
        ),
        sp_hash=bytes32(std_hash(b"sp")),
        end_of_sub_slot=False,
        harvester_id=bytes32(std_hash(b"harvester")),
        received_at=received_at,
        difficulty=owner.difficulty,
    )


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[PoolContext]:
    config = parse_config(yaml.safe_load((REPO / "config.yaml").read_text()), REPO)
    store = SqlitePoolStore(tmp_path / "pool.sqlite")
    await store.open()
    # The difficulty loop reads only the store, the config and the clock: no node or wallet is needed.
    no_chain = cast(Any, None)
    yield PoolContext(config=config, store=store, node=no_chain, wallet=no_chain, constants=no_chain, now=lambda: NOW)
    await store.close()


async def test_busy_farmer_goes_up_silent_farmer_comes_down(ctx: PoolContext) -> None:
    busy, silent = farmer(b"busy", 10), farmer(b"silent", 1_000)
    for record in (busy, silent):
        await ctx.store.add_farmer(record)
    for number in range(100):  # 100 partials in the last hour: ~80 times the target rate
        await ctx.store.add_partial(partial(busy, number, NOW - 3600 + number * 36))
    await ctx.store.add_partial(partial(silent, 0, NOW - 2 * DAY))  # nothing for two days

    assert await DifficultyLoop().run_once(ctx) == 2
    raised = await ctx.store.get_farmer(busy.launcher_id)
    lowered = await ctx.store.get_farmer(silent.launcher_id)
    assert raised is not None and raised.difficulty > 10
    assert lowered is not None and ctx.config.difficulty.minimum <= lowered.difficulty < 1_000


async def test_a_pending_put_difficulty_is_never_overridden(ctx: PoolContext) -> None:
    busy = farmer(b"busy", 10)
    await ctx.store.add_farmer(busy)
    for number in range(100):
        await ctx.store.add_partial(partial(busy, number, NOW - 3600 + number * 36))
    await ctx.store.update_farmer_settings(busy.launcher_id, pending_difficulty=PendingDifficulty(25, NOW + 60, NOW))

    assert await DifficultyLoop().run_once(ctx) == 0
    waiting = await ctx.store.get_farmer(busy.launcher_id)
    assert waiting is not None and (waiting.difficulty, waiting.pending_difficulty) == (10, 25)

    ctx.now = lambda: NOW + 60  # the cooldown is over: the farmer's choice takes effect, not the loop's
    await DifficultyLoop().run_once(ctx)
    applied = await ctx.store.get_farmer(busy.launcher_id)
    assert applied is not None and (applied.difficulty, applied.pending_difficulty) == (25, None)


async def test_a_farmers_preset_holds_its_difficulty_within_the_pools_bounds(ctx: PoolContext) -> None:
    from pool.store.models import FarmerSettings

    busy, fixed_low = farmer(b"busy", 10), farmer(b"fixed low", 500)
    for record in (busy, fixed_low):
        await ctx.store.add_farmer(record)
    for number in range(100):  # busy: the adjustment alone would raise it
        await ctx.store.add_partial(partial(busy, number, NOW - 3600 + number * 36))
    await ctx.store.change_farmer_settings(FarmerSettings(busy.launcher_id, difficulty_preset=12), NOW)
    # A preset the operator's bounds no longer allow (difficulty.minimum rose since) is held at the bound.
    await ctx.store.change_farmer_settings(FarmerSettings(fixed_low.launcher_id, difficulty_preset=1), NOW)

    assert await DifficultyLoop().run_once(ctx) == 2
    ctx.now = lambda: NOW + 1  # in force from the next second
    held = {f.launcher_id: f.difficulty_at(NOW + 1) for f in await ctx.store.list_farmers()}
    assert held == {busy.launcher_id: 12, fixed_low.launcher_id: ctx.config.difficulty.minimum}
    assert await DifficultyLoop().run_once(ctx) == 0  # already there: nothing moves


async def test_a_pass_writes_its_changes_a_slice_at_a_time(ctx: PoolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many changes in one pass go to the store a few per transaction (SQLite's one writer is never held for all of
    them), and every one of them lands."""
    monkeypatch.setattr(difficulty_adjustment, "CHANGES_PER_WRITE", 2)
    silent = [farmer(bytes([number]) + b"silent", 1_000) for number in range(5)]
    for record in silent:
        await ctx.store.add_farmer(record)
        await ctx.store.add_partial(partial(record, 0, NOW - 2 * DAY))  # nothing for two days: each comes down
    writes: list[int] = []
    adjust = ctx.store.adjust_difficulties

    async def counted(adjustments: Any, effective_at: int, due: Any = (), now: int = 0) -> list[bytes32]:
        writes.append(len(adjustments))
        return await adjust(adjustments, effective_at, due=due, now=now)

    monkeypatch.setattr(ctx.store, "adjust_difficulties", counted)
    assert await DifficultyLoop().run_once(ctx) == 5
    assert writes == [2, 2, 1]
    lowered = [await ctx.store.get_farmer(record.launcher_id) for record in silent]
    assert all(record is not None and record.difficulty < 1_000 for record in lowered)
