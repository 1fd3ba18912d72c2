"""The pool page and a farmer's page read bounded pages of their lists (older ones behind a link), and GET / shares
its figures among the requests of a few seconds. Against a real node (the pages ask it for the peak) and a real
farmer registered with POST /farmer; the money behind the lists is put in the store the way the loops do."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from pool.chia_adapter import encode_puzzle_hash
from pool.devnet.world import World
from pool.estimates import block_points
from pool.http import api
from pool.http.operator_endpoints import METRICS_STATE, STATUS
from pool.http.page_data import (
    BLOCKS_PER_PAGE,
    EFFORT_BLOCKS_PER_PAGE,
    ROUNDS_PER_PAGE,
    ROWS_PER_PAGE,
    WATCHED_SECONDS,
    Shared,
    percent,
)
from pool.http.pages import NEWEST_BLOCKS, PEAK_HEIGHT, POOL_VIEW, SESSION_COOKIE
from pool.payouts.books import xch
from pool.store.abstract import AbstractPoolStore
from pool.store.models import ClaimStatus, DistributionShare, FarmerRecord, FarmerSettings
from tests.http.farmer_requests import PoolUnderTest, SharedFarmer, shared_farmer
from tests.http.test_http_farmer import login_cookie
from tests.store.test_store_contract import distribution, farmer_payment, h, make_claim, make_partial, make_round

ROUNDS = ROWS_PER_PAGE + 3  # more than a page of both lists
COIN_URL = "https://explorer.example/coin/0x{id}"
TX_URL = "https://explorer.example/tx/{id}"


@pytest_asyncio.fixture(scope="module")
async def pool(world: World, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PoolUnderTest]:
    # Nothing kept: the figures made as the pool starts would show the store before the module fills it. The test
    # of the sharing sets its time.
    server = {"page_cache_seconds": 0, "explorer_coin_url": COIN_URL, "explorer_tx_url": TX_URL}
    started = await PoolUnderTest.start(world, tmp_path_factory.mktemp("pages") / "pool.sqlite", server=server)
    yield started
    await started.close()


@pytest_asyncio.fixture(scope="module")
async def farmer(world: World, pool: PoolUnderTest) -> SharedFarmer:
    registered = await shared_farmer(world, pool, "farmer one")
    record = await pool.ctx.store.get_farmer(registered.launcher_id)
    assert record is not None
    for number in range(ROUNDS):
        await pay(pool.ctx.store, record, number)
    return registered


async def pay(store: AbstractPoolStore, farmer: FarmerRecord, number: int) -> None:
    """A won block's reward claimed, shared out to the farmer and paid to it in a round of its own, confirmed."""
    amount = 1_000 + number
    coin = f"page reward {number}"
    # Two rewards at each height (several blocks' rewards may be created at once), except at the first.
    claim = dataclasses.replace(make_claim(coin, farmer, amount=amount), coin_height=100 + (number + 1) // 2)
    assert await store.add_reward_claim(claim)
    await store.update_reward_claim(h(coin), ClaimStatus.CONFIRMED, confirmed_height=70)
    await store.distribute(distribution(amount), [DistributionShare(farmer.launcher_id, amount, points=0)])
    round_id = await store.create_payout_round(
        make_round(amount, created_at=10_000 + number), [farmer_payment(farmer, amount)], batch_fees=[0]
    )
    (batch,) = await store.batches(round_id)
    assert batch.id is not None
    await store.mark_batch_submitted(batch.id, h(f"page tx {number}"), b"bundle", now=1, height=1)
    await store.mark_batch_confirmed(batch.id, height=2, now=2)


def mojos(page: str, table: str) -> list[int]:
    """The amounts of a table of the page, in its order."""
    section = page.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return [int(value) for value in re.findall(r'data-mojos="(\d+)"', section)]


def rows(page: str, table: str) -> int:
    return page.split(f'id="{table}"', 1)[1].split("</table>", 1)[0].count("<tr><td>")


def older_link(page: str, name: str) -> str | None:
    found = re.search(rf'id="{name}" href="\?([a-z_]+=[0-9a-f-]+)"', page)
    return None if found is None else found.group(1)


async def test_the_farmer_page_lists_its_payouts_and_shares_page_by_page(
    pool: PoolUnderTest, farmer: SharedFarmer
) -> None:
    token = await login_cookie(pool, farmer.plotnft, farmer.auth_sk)
    cookie = {"Cookie": f"{SESSION_COOKIE}={token}"}

    async def page(query: str = "") -> str:
        response = await pool.client.get(f"/login{query}", headers=cookie)
        assert response.status == 200, await response.text()
        return await response.text()

    newest = [1_000 + number for number in reversed(range(ROUNDS))]
    first = await page()
    assert mojos(first, "payouts") == newest[:ROWS_PER_PAGE]
    assert f'id="paid">{xch(sum(newest))}<' in first  # every confirmed payment, not one page's
    assert rows(first, "earnings") == ROWS_PER_PAGE
    link = older_link(first, "older-payouts")
    assert link is not None and older_link(first, "older-earnings") is not None
    second = await page(f"?{link}")
    assert mojos(second, "payouts") == newest[ROWS_PER_PAGE:]
    assert older_link(second, "older-payouts") is None
    earnings = await page(f"?{older_link(first, 'older-earnings')}")
    assert rows(earnings, "earnings") == ROUNDS - ROWS_PER_PAGE
    assert older_link(earnings, "older-earnings") is None
    for bad in ("payouts_before=-1", "payouts_before=x", "earnings_before=1e3", "payouts_before=" + "9" * 30):
        response = await pool.client.get(f"/login?{bad}", headers=cookie)
        assert response.status == 400, bad


async def test_the_pool_page_lists_rounds_page_by_page_and_shares_its_figures(
    pool: PoolUnderTest, farmer: SharedFarmer
) -> None:
    first = await (await pool.client.get("/")).text()
    newest = [1_000 + number for number in reversed(range(ROUNDS))]
    assert mojos(first, "rounds") == newest[:ROUNDS_PER_PAGE]
    link = older_link(first, "older-rounds")
    assert link is not None
    second = await (await pool.client.get(f"/?{link}")).text()
    assert mojos(second, "rounds") == newest[ROUNDS_PER_PAGE : 2 * ROUNDS_PER_PAGE]
    blocks = re.search(r'id="blocks-won">(\d+)<', first)
    assert blocks is not None and int(blocks.group(1)) == ROUNDS
    # Every block once, page by page (the order within a height is the store's, tested with it).
    shown: list[int] = []
    page, pages = first, 0
    while True:
        shown += mojos(page, "blocks")
        pages += 1
        older = older_link(page, "older-blocks")
        if older is None:
            break
        page = await (await pool.client.get(f"/?{older}")).text()
        assert mojos(page, "rounds") == newest[:ROUNDS_PER_PAGE]  # the other list stays at its first page
    assert sorted(shown, reverse=True) == newest and pages == -(-ROUNDS // BLOCKS_PER_PAGE)
    for bad in ("rounds_before=-3", "blocks_before=12", "blocks_before=12-zz", "blocks_before=x-" + "00" * 32):
        assert (await pool.client.get(f"/?{bad}")).status == 400, bad

    # A block won meanwhile shows once the shared figures are made again (server.page_cache_seconds).
    record = await pool.ctx.store.get_farmer(farmer.launcher_id)
    assert record is not None
    pool.app[POOL_VIEW].seconds = 300
    await pool.client.get("/")
    assert await pool.ctx.store.add_reward_claim(make_claim("won meanwhile", record))
    again = await (await pool.client.get("/")).text()
    assert f'id="blocks-won">{ROUNDS}<' in again  # the figures made a moment ago
    pool.app[POOL_VIEW].seconds = 0
    fresh = await (await pool.client.get("/")).text()
    assert f'id="blocks-won">{ROUNDS + 1}<' in fresh


async def test_the_blocks_page_shows_each_rounds_effort_page_by_page(pool: PoolUnderTest, farmer: SharedFarmer) -> None:
    """A block whose claim kept the network's figures gets its exact effort; those recorded before get none."""
    store, ctx = pool.ctx.store, pool.ctx
    record = await store.get_farmer(farmer.launcher_id)
    assert record is not None
    this_hour = ctx.now() - ctx.now() % 3600
    # 30 points in the round (after the other claims, recorded at unix time 2000), a block taking 40 on average;
    # the round ends with the block that made the reward coin, before the claim was recorded: 5 points since.
    await store.add_partial(make_partial(record, "round of the measured block", this_hour - 7200, 30))
    await store.add_partial(make_partial(record, "after the measured block", this_hour - 1800, 5))
    measured = dataclasses.replace(
        make_claim("measured block", record),
        coin_height=500,
        submitted_at=this_hour + 60,
        network_difficulty=40,
        network_sub_slot_iters=ctx.constants.POOL_SUB_SLOT_ITERS,
        coin_timestamp=this_hour - 3600,
    )
    assert await store.add_reward_claim(measured)
    first = await (await pool.client.get("/blocks")).text()
    efforts = re.findall(r'class="num effort">([^<]*)<', first)
    assert efforts[0] == "75.0 %" and set(efforts[1:]) == {"-"}
    assert COIN_URL.replace("{id}", h("measured block").hex()) in first
    assert f'href="/farmers/{farmer.launcher_id.hex()}"' in first
    peak = await ctx.node.peak()
    so_far = block_points(peak.difficulty, peak.sub_slot_iters, ctx.constants)
    assert f'id="round-expected">{float(so_far):,.1f}<' in first
    assert 'id="round-points">5<' in first
    assert f'id="effort-so-far">{percent(5 / so_far)}<' in first
    shown, page = 0, first
    while True:
        shown += len(re.findall(r'class="num effort"', page))
        older = older_link(page, "older-blocks")
        if older is None:
            break
        page = await (await pool.client.get(f"/blocks?{older}")).text()
    assert shown == len(await store.won_blocks(1000)) > EFFORT_BLOCKS_PER_PAGE
    for bad in ("before=12", "before=x-" + "00" * 32):
        assert (await pool.client.get(f"/blocks?{bad}")).status == 400, bad


async def test_the_public_farmer_page_shows_no_address_and_links_to_the_explorer(
    pool: PoolUnderTest, farmer: SharedFarmer
) -> None:
    record = await pool.ctx.store.get_farmer(farmer.launcher_id)
    assert record is not None
    response = await pool.client.get(f"/farmers/0x{farmer.launcher_id.hex()}")
    assert response.status == 200
    page = await response.text()
    assert f'id="points">{record.points}<' in page
    assert mojos(page, "payouts") == [1_000 + number for number in reversed(range(ROUNDS))][:ROWS_PER_PAGE]
    assert older_link(page, "older-payouts") is not None
    assert TX_URL.replace("{id}", h(f"page tx {ROUNDS - 1}").hex()) in page
    # Its harvesters: the one of the partials of the blocks test.
    assert f'class="harvester-id">{h("harvester").hex()}<' in page
    for private in (
        record.payout_instructions,
        record.payout_puzzle_hash.hex(),
        encode_puzzle_hash(record.payout_puzzle_hash, pool.ctx.config.pool.address_prefix),
        "csrf_token",
    ):
        assert private not in page
    assert (await pool.client.get("/farmers/" + "00" * 32)).status == 404
    assert (await pool.client.get("/farmers/zz")).status == 400
    # The farmer's own page links to its public one.
    token = await login_cookie(pool, farmer.plotnft, farmer.auth_sk)
    own = await (await pool.client.get("/login", headers={"Cookie": f"{SESSION_COOKIE}={token}"})).text()
    assert f'id="public-page" href="/farmers/{farmer.launcher_id.hex()}"' in own
    assert f'class="harvester-id">{h("harvester").hex()}<' in own


async def test_the_pool_page_shows_the_payout_policy(pool: PoolUnderTest, farmer: SharedFarmer) -> None:
    page = await (await pool.client.get("/")).text()
    policy = pool.ctx.config.payouts
    assert f'id="policy-fee">{pool.ctx.config.pool.fee_display} of every block reward<' in page
    scheme = re.search(r'id="policy-scheme">\s*(\w+)', page)
    assert scheme is not None and scheme.group(1).lower().startswith(policy.scheme)
    assert "every " in page.split('id="policy-interval">', 1)[1][:20]
    assert TX_URL.replace("{id}", h(f"page tx {ROUNDS - 1}").hex()) in page  # the newest round's transaction


async def test_a_shared_value_is_made_once_then_again_in_the_background() -> None:
    now = [100.0]
    made: list[int] = []

    async def make() -> int:
        await asyncio.sleep(0)  # requests that come meanwhile wait for this making, they do not start their own
        made.append(len(made))
        return len(made)

    shared = Shared[int](5, clock=lambda: now[0])
    assert await asyncio.gather(*(shared.get(make) for _ in range(3))) == [1, 1, 1]
    now[0] += 2.4
    assert await shared.get(make) == 1 and len(made) == 1
    now[0] += 0.1  # half its time: the value is still given, and made again meanwhile
    assert [await shared.get(make) for _ in range(3)] == [1, 1, 1]
    await settled()
    assert await shared.get(make) == 2 and len(made) == 2  # once, however many requests came
    shared.seconds = 0
    assert [await shared.get(make) for _ in range(2)] == [3, 4]
    await shared.close()


async def test_no_request_waits_for_shared_figures_once_they_are_made() -> None:
    """Only the first request waits for the store: later ones get the figures at hand while they are made again,
    even when the making hangs, and a making that fails leaves them as they were until a later one succeeds."""
    now = [0.0]
    store_answers = asyncio.Event()
    outcomes: list[int | None] = [1, None, 3, 4]  # None: the store fails

    async def make() -> int:
        if len(outcomes) < 4:
            await store_answers.wait()
        outcome = outcomes.pop(0)
        if outcome is None:
            raise ConnectionError("the store is gone")
        return outcome

    shared = Shared[int](5, clock=lambda: now[0])
    assert await shared.get(make) == 1
    now[0] += 6  # past its time, not yet twice its time
    request = asyncio.create_task(shared.get(make))
    await settled()
    assert request.done() and request.result() == 1  # the store has not answered: the request did not wait for it
    store_answers.set()
    await settled()
    assert await shared.get(make) == 1  # that making failed: the figures stay, and this request makes them again
    await settled()
    assert await shared.get(make) == 3
    await shared.close()


async def test_figures_older_than_twice_their_time_are_made_again_before_they_are_given() -> None:
    """After a quiet while (a scrape or a probe every minute, figures kept 5 s) a request does not read the figures
    the one before it left: it waits for fresh ones, shared with the requests that come meanwhile."""
    now = [0.0]
    made: list[int] = []

    async def make() -> int:
        await asyncio.sleep(0)
        made.append(len(made) + 1)
        return made[-1]

    shared = Shared[int](5, clock=lambda: now[0])
    assert await shared.get(make) == 1
    now[0] += 60
    assert await asyncio.gather(*(shared.get(make) for _ in range(3))) == [2, 2, 2] and made == [1, 2]
    now[0] += 3  # half its time: given at once, made again in the background
    assert await shared.get(make) == 2
    now[0] += 60  # the background making may not have run yet: the request waits for it rather than start another
    assert await shared.get(make) == 3 and made == [1, 2, 3]
    await shared.close()


async def test_a_watched_value_is_made_again_between_seldom_requests() -> None:
    """Scrapes every 15 s of figures kept 5 s: each finds them at most 5 s old and none waits for a making, because
    while the value is asked it is made again in the background every 5 s; once nobody asked for WATCHED_SECONDS
    those makings stop, and the next request waits for a fresh value."""
    now = [0.0]
    naps: list[tuple[float, asyncio.Future[None]]] = []
    made: list[float] = []
    making_now = [False]

    async def sleep(seconds: float) -> None:
        woken = asyncio.get_running_loop().create_future()
        naps.append((now[0] + seconds, woken))
        await woken

    async def make() -> float:
        assert not making_now[0], "a request waits for a making"
        made.append(now[0])
        await asyncio.sleep(0)
        return now[0]

    async def at(second: float) -> None:
        now[0] = second
        for wake_at, woken in naps:
            if wake_at <= second and not woken.done():
                woken.set_result(None)
        await settled()

    shared = Shared[float](5, clock=lambda: now[0], sleep=sleep)
    assert await shared.get(make) == 0.0
    for second in range(1, 121):
        await at(second)
        if second % 15 == 0:
            making_now[0] = True  # a making from here on would be the request's own
            value = await shared.get(make)
            making_now[0] = False
            assert second - 5 <= value <= second
    assert made == [5.0 * n for n in range(0, 25)]  # every 5 s, not only when asked
    for second in range(121, 120 + int(WATCHED_SECONDS) + 60):
        await at(second)
    assert made[-1] < 120 + WATCHED_SECONDS + 5  # nobody watches: no more makings
    count = len(made)
    assert await shared.get(make) == now[0] and len(made) == count + 1  # too old: this request waited for one
    await shared.close()


async def test_the_shared_figures_are_made_as_the_pool_starts(world: World, tmp_path: Path) -> None:
    """Before any request: the pages', the API's and /status's shared figures and the state /metrics shows are made
    in the background as the application starts, so that the first request after a start does not wait for them."""
    started = await PoolUnderTest.start(world, tmp_path / "pool.sqlite", server={"metrics_cache_seconds": 5})
    try:
        app = started.app
        shared: list[Shared[Any]] = [
            app[POOL_VIEW],
            app[PEAK_HEIGHT],
            app[NEWEST_BLOCKS],
            app[api.BLOCKS],
            app[api.ROUNDS],
            app[STATUS],
            app[METRICS_STATE],
        ]
        metrics = started.ctx.stats.metrics
        for _ in range(600):  # a bound on the wait, not a timing: the makings run beside this test
            if all(s.made for s in shared) and b"pool_partials_pending" in metrics.exposition():
                break
            await asyncio.sleep(0.05)
        assert [s.made for s in shared] == [True] * len(shared)
        assert b"pool_partials_pending" in metrics.exposition()
    finally:
        await started.close()


async def settled() -> None:
    """Lets the background makings that can run run to their end."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_the_farmer_page_says_when_its_owed_balance_is_paid(pool: PoolUnderTest, farmer: SharedFarmer) -> None:
    """Below the minimum payment a balance waits for it: the page says so instead of "the next payout". Last in
    the module: it leaves the farmer owed."""
    token = await login_cookie(pool, farmer.plotnft, farmer.auth_sk)
    cookie = {"Cookie": f"{SESSION_COOKIE}={token}"}

    async def owed_when() -> str:
        page = await (await pool.client.get("/login", headers=cookie)).text()
        found = re.search(r'id="owed-when">([^<]*)<', page)
        assert found is not None
        return " ".join(found.group(1).split())

    assert await owed_when() == "nothing owed now"  # every reward of the module was paid
    # The devnet's pool pays any balance (payouts.min_payment 0): the farmer's own minimum, chosen on its page.
    minimum = 1_000
    assert pool.ctx.config.payouts.min_payment < minimum
    await pool.ctx.store.change_farmer_settings(FarmerSettings(farmer.launcher_id, min_payout=minimum), now=1)
    record = await pool.ctx.store.get_farmer(farmer.launcher_id)
    assert record is not None
    for coin, amount in (("owed below the minimum", 5), ("owed up to the minimum", minimum - 5)):
        assert await pool.ctx.store.add_reward_claim(make_claim(coin, record, amount=amount))
        await pool.ctx.store.update_reward_claim(h(coin), ClaimStatus.CONFIRMED, confirmed_height=70)
        await pool.ctx.store.distribute(distribution(amount), [DistributionShare(farmer.launcher_id, amount, points=0)])
        if amount == 5:
            assert await owed_when() == f"paid once it reaches {xch(minimum)} (the minimum payment)"
    assert await owed_when() == "paid at the next payout"


def test_percentages_keep_a_tiny_effort_visible() -> None:
    assert [percent(None), percent(Fraction(0)), percent(Fraction(3, 2)), percent(Fraction(1, 10**7))] == [
        "-",
        "0.0 %",
        "150.0 %",
        "1e-05 %",
    ]
