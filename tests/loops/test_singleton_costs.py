"""What following the farmers' singletons costs the node: each pass resumes from the stored tips, looked up with their
children in one call for a page of farmers, so farmers whose singletons have not moved cost that one call and no
spend read (no block generator run in the node), and a moved one costs its walk from its tip: its new spends, read
once."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import pytest_asyncio

from pool.chain.node_rpc import RpcFullNode
from pool.chia_adapter import CoinRecord, bytes32
from pool.devnet.world import PlotNFTInfo, World
from pool.loops import singletons
from pool.loops.singletons import NAMED_IN_A_LINE, PAGES_AT_ONCE, SingletonStats, _log_not_on_chain
from pool.store.abstract import NotLeader
from tests.http.farmer_requests import RELATIVE_LOCK_HEIGHT, buried_plotnft, shared_plotnft
from tests.loops.loops_harness import Clock, Pool, random_puzzle_hash, win_and_claim
from tests.store.test_store_contract import make_farmer


class NodeCalls(Counter[str]):
    """The pool's full node RPCs by name, as its client makes them."""

    def __call__(self, call: str, seconds: float, answered: bool) -> None:
        self[call] += 1


@pytest_asyncio.fixture
async def pool(world: World, tmp_path: Path) -> AsyncIterator[Pool]:
    started = await Pool.start(world, tmp_path / "pool.sqlite", Clock(), relative_lock_height=RELATIVE_LOCK_HEIGHT)
    yield started
    await started.stop()


async def one_pass(pool: Pool) -> dict[str, int]:
    """The node calls of one pass of the singleton loop, which must change nothing."""
    calls, stats = await counted_pass(pool)
    assert (stats.failed, stats.unavailable) == (0, 0), stats
    return calls


async def counted_pass(pool: Pool) -> tuple[dict[str, int], SingletonStats]:
    """One pass of the singleton loop at the node's peak: the node calls it made, and what it did."""
    await pool.peak()
    node = pool.ctx.node
    assert isinstance(node, RpcFullNode)
    calls = NodeCalls()
    node.observer = calls
    try:
        stats = await pool.singletons.run_once(pool.ctx)
    finally:
        node.observer = None
    return dict(calls), stats


async def test_unchanged_farmers_cost_one_look_up_together_and_a_moved_one_its_new_spend(
    world: World, pool: Pool
) -> None:
    unchanged = [(await shared_plotnft(world, name))[0] for name in ("farmer one", "farmer two")]
    moving: PlotNFTInfo = await buried_plotnft(world, pool_url="http://127.0.0.1:1", fresh_launcher=False)
    for plotnft in [*unchanged, moving]:
        await pool.add_farmer(plotnft, random_puzzle_hash())
    farmers = len(unchanged) + 1

    first = await one_pass(pool)
    print(f"first pass over {farmers} farmers: {first}")
    assert first == {"get_coin_records_by_names": 1}
    await world.farm_blocks(3)  # the chain goes on; the singletons do not move
    assert await one_pass(pool) == {"get_coin_records_by_names": 1}

    # One singleton moves (an absorb of a reward, buried): its new spend is read once, the others cost as before.
    await win_and_claim(pool, world, moving)
    moved = await one_pass(pool)
    print(f"after an absorb: {moved}")
    # Its walk: its tip (still buried), the tip's child (spent: its spend read), the new tip's child (unspent).
    assert moved == {"get_coin_records_by_names": 1, "get_coin_record_by_name": 3, "get_puzzle_and_solution": 1}
    farmer = await pool.ctx.store.get_farmer(moving.launcher_id)
    assert farmer is not None and farmer.is_pool_member
    assert farmer.singleton_tip.coin.name() != moving.launcher_id  # the stored tip moved on to the absorb
    assert await one_pass(pool) == {"get_coin_records_by_names": 1}
    members = [f.is_pool_member for f in await pool.ctx.store.list_farmers()]
    assert members == [True] * farmers


async def test_a_farmer_whose_coins_the_node_does_not_have_costs_no_call_of_its_own(world: World, pool: Pool) -> None:
    """Neither its tip nor its launcher is on chain (the node said so in the page's one call): nothing changes for it,
    as when its walk finds no launcher, and it is not walked one call at a time."""
    plotnft = (await shared_plotnft(world, "farmer one"))[0]
    await pool.add_farmer(plotnft, random_puzzle_hash())
    ghost = make_farmer(77)  # a record whose singleton was never on this chain
    await pool.ctx.store.add_farmer(ghost)
    calls, stats = await counted_pass(pool)
    assert calls == {"get_coin_records_by_names": 1}
    assert (stats.failed, stats.unavailable, stats.updated) == (1, 0, 0)
    assert stats.not_on_chain == [ghost.launcher_id]
    assert await pool.ctx.store.get_farmer(ghost.launcher_id) == ghost


async def test_pages_of_farmers_are_looked_up_a_few_at_once(
    world: World, pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page's look-up is mostly waiting for the node: a few pages' are in flight at once, never more."""
    monkeypatch.setattr(singletons, "FARMERS_PER_READ", 1)  # a page a farmer
    plotnft = (await shared_plotnft(world, "farmer one"))[0]
    await pool.add_farmer(plotnft, random_puzzle_hash())
    ghosts = [make_farmer(80 + n) for n in range(2 * PAGES_AT_ONCE)]
    for ghost in ghosts:
        await pool.ctx.store.add_farmer(ghost)
    node = pool.ctx.node
    look_up = node.coin_records_by_names
    in_flight, most = 0, 0

    async def counted(names: Sequence[bytes32]) -> list[CoinRecord]:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await look_up(names)
        finally:
            in_flight -= 1

    monkeypatch.setattr(node, "coin_records_by_names", counted)
    calls, stats = await counted_pass(pool)
    assert calls == {"get_coin_records_by_names": 1 + len(ghosts)}
    assert 1 < most <= PAGES_AT_ONCE
    assert sorted(stats.not_on_chain) == sorted(ghost.launcher_id for ghost in ghosts)
    assert (stats.failed, stats.unavailable, stats.updated) == (len(ghosts), 0, 0)


async def test_a_page_that_finds_the_pool_no_longer_leads_ends_the_pass_as_such(
    world: World, pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NotLeader from a page (its write fenced off) reaches the loops' runner as itself, which stops every loop."""
    await pool.ctx.store.add_farmer(make_farmer(90))

    async def fenced(*args: object) -> None:
        raise NotLeader("another process leads")

    monkeypatch.setattr(singletons, "_settle_page", fenced)
    await pool.peak()
    with pytest.raises(NotLeader):
        await pool.singletons.run_once(pool.ctx)


def test_farmers_not_on_chain_are_one_line_a_pass(caplog: pytest.LogCaptureFixture) -> None:
    """A node that lost its chain knows no launcher: one warning a pass names the first few and counts the rest."""
    launchers = [bytes32(bytes([n]) * 32) for n in range(NAMED_IN_A_LINE + 2)]
    with caplog.at_level(logging.WARNING, logger="pool.loops.singletons"):
        _log_not_on_chain(launchers)
        _log_not_on_chain([])
    [record] = caplog.records
    assert record.getMessage().startswith(f"cannot follow the singletons of {NAMED_IN_A_LINE + 2} farmers")
    assert launchers[NAMED_IN_A_LINE - 1].hex() in record.getMessage()
    assert launchers[NAMED_IN_A_LINE].hex() not in record.getMessage()
    assert record.getMessage().endswith("and 2 more)")
