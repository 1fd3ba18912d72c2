"""The public JSON API against its own OpenAPI document, on a pool with a real node and a farmer registered with POST
/farmer; partials, blocks won and payout rounds put in the store the way the pool records them, at chosen times, so
that each round's points and effort are known exactly."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import pytest_asyncio

from pool.devnet.world import World
from pool.estimates import block_points, estimated_space
from pool.http.api import BLOCKS, BLOCKS_LISTED
from pool.store.models import FarmerRecord
from tests.http.api_checks import check, checked
from tests.http.farmer_requests import PoolUnderTest, SharedFarmer, shared_farmer
from tests.http.test_pages import pay
from tests.store.test_store_contract import h, make_claim, make_farmer, make_partial

HOUR = 3600


@dataclasses.dataclass(frozen=True)
class Filled:
    farmer: SharedFarmer
    record: FarmerRecord
    document: dict[str, Any]


@pytest_asyncio.fixture(scope="module")
async def pool(world: World, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PoolUnderTest]:
    # No shared figures: each request reads the store, so that every test sees what it put there.
    path = tmp_path_factory.mktemp("api") / "pool.sqlite"
    started = await PoolUnderTest.start(world, path, server={"page_cache_seconds": 0})
    try:
        yield started
    finally:
        await started.close()


@pytest_asyncio.fixture(scope="module")
async def filled(world: World, pool: PoolUnderTest) -> Filled:
    """Three blocks won two hours apart, with 30, 10 and 20 points in their rounds and 5 since, after a block won
    long ago (with no network figures recorded) and paid out in a round of its own."""
    registered = await shared_farmer(world, pool, "farmer one")
    store = pool.ctx.store
    record = await store.get_farmer(registered.launcher_id)
    assert record is not None
    await pay(store, record, 0)  # 1_000 mojos, the block at height 100 of hour 0
    other = make_farmer(7)
    await store.add_farmer(other)
    this_hour = pool.ctx.now() - pool.ctx.now() % HOUR
    pool_iters = pool.ctx.constants.POOL_SUB_SLOT_ITERS
    # The network's figures when each was claimed: a block took 20, 20 and 10 points on average.
    networks = ((20, pool_iters), (40, 2 * pool_iters), (10, pool_iters))
    for number, (hours_ago, (difficulty, iters)) in enumerate(zip((6, 4, 2), networks, strict=True)):
        claim = dataclasses.replace(
            make_claim(f"api block {number}", other, amount=1_750_000_000_000 + number),
            coin_height=200 + number,
            submitted_at=this_hour - hours_ago * HOUR + 600,
            network_difficulty=difficulty,
            network_sub_slot_iters=iters,
        )
        assert await store.add_reward_claim(claim)
    ids = [
        await store.add_partial(make_partial(record, f"api {hours_ago}", this_hour - hours_ago * HOUR, points))
        for points, hours_ago in ((30, 7), (10, 5), (20, 3), (5, 1))
    ]
    last = ids[-1]
    assert last is not None
    await store.confirm_partials([last])  # confirmed or pending, a partial accepted counts
    refused = await store.add_partial(make_partial(record, "api refused", this_hour - HOUR, 50))
    assert refused is not None and await store.reject_partial(refused, "INVALID_PROOF")
    await store.add_partial_refusal(record.launcher_id, this_hour - HOUR, "TOO_LATE")
    document = await (await pool.client.get("/api/v1/openapi.json")).json()
    return Filled(registered, record, document)


async def test_the_document_is_served_and_every_schema_is_valid_json_schema(
    pool: PoolUnderTest, filled: Filled
) -> None:
    response = await pool.client.get("/api/v1/openapi.json")
    assert response.status == 200 and response.headers["Access-Control-Allow-Origin"] == "*"
    document = filled.document
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/api/v1/pool",
        "/api/v1/blocks",
        "/api/v1/farmers/{launcher_id}",
        "/api/v1/rounds",
        "/api/v1/openapi.json",
    }
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


async def test_blocks_carry_their_rounds_points_and_effort(pool: PoolUnderTest, filled: Filled) -> None:
    response = await pool.client.get("/api/v1/blocks")
    assert response.headers["Cache-Control"] == "public, max-age=0"  # server.page_cache_seconds
    blocks = (await checked(response, filled.document, "/api/v1/blocks"))["blocks"]
    # Newest first; the paid claim at height 100 is the oldest block: its round began with the pool.
    assert [b["height"] for b in blocks] == [202, 201, 200, 100]
    assert [b["points_in_round"] for b in blocks] == [20, 10, 30, 0]
    assert [b["expected_points"] for b in blocks] == [10.0, 20.0, 20.0, None]
    assert [b["effort"] for b in blocks] == [2.0, 0.5, 1.5, None]  # None: the network's figures are not known
    assert [b["network_difficulty"] for b in blocks] == [10, 40, 20, None]
    assert blocks[0]["reward"] == 1_750_000_000_002 and blocks[0]["finder_launcher_id"] == h("launcher 7").hex()
    assert len(blocks) <= BLOCKS_LISTED
    # A page further on: the blocks after the cursor, each round as on the first page.
    cursor = f"{blocks[1]['height']}-{blocks[1]['coin_id']}"
    older = await checked(await pool.client.get(f"/api/v1/blocks?before={cursor}"), filled.document, "/api/v1/blocks")
    assert older == {"blocks": blocks[2:], "older": None}


async def test_the_pool_shows_its_figures_policy_and_effort_so_far(pool: PoolUnderTest, filled: Filled) -> None:
    body = await checked(await pool.client.get("/api/v1/pool"), filled.document, "/api/v1/pool")
    assert body["blocks_won"] == 4 and body["points_in_round"] == 5
    # The round in progress is measured by the network's figures the real node reports now.
    peak = await pool.ctx.node.peak()
    assert peak.difficulty > 0 and peak.sub_slot_iters > 0
    expected = block_points(peak.difficulty, peak.sub_slot_iters, pool.ctx.constants)
    assert body["expected_points"] == round(float(expected), 4)
    assert body["effort"] == round(float(5 / expected), 4)
    assert body["policy"]["fee"] == pool.ctx.config.pool.fee_display
    assert body["policy"]["payout_scheme"] == pool.ctx.config.payouts.scheme
    assert body["paid_to_farmers"] == 1_000 and body["name"] == pool.ctx.config.pool.name


async def test_a_farmer_shows_its_figures_but_no_payout_address_or_key(pool: PoolUnderTest, filled: Filled) -> None:
    path = f"/api/v1/farmers/{filled.farmer.launcher_id.hex()}"
    response = await pool.client.get(path)
    text = await response.text()
    body = await checked(response, filled.document, "/api/v1/farmers/{launcher_id}")
    assert body["partials_24h"] == {"accepted": 4, "points": 65, "refused": {"INVALID_PROOF": 1, "TOO_LATE": 1}}
    peak = (await pool.ctx.node.peak()).height  # the same space as the farmer page shows
    assert body["estimated_space"] == estimated_space(65, 24 * HOUR, pool.ctx.constants, peak)
    assert body["points"] == 5  # the one partial confirmed
    assert [(p["amount"], p["status"]) for p in body["payouts"]] == [(1_000, "confirmed")]
    assert body["paid_total"] == 1_000
    record = filled.record
    secrets = {
        record.payout_instructions,
        record.payout_puzzle_hash.hex(),
        bytes(record.authentication_public_key).hex(),
        bytes(filled.farmer.plotnft.owner_secret_key.get_g1()).hex(),
    }
    for everything in ("/api/v1/pool", "/api/v1/blocks", "/api/v1/rounds"):
        text += await (await pool.client.get(everything)).text()
    for secret in secrets:
        assert secret not in text


async def test_rounds_page_by_page(pool: PoolUnderTest, filled: Filled) -> None:
    body = await checked(await pool.client.get("/api/v1/rounds"), filled.document, "/api/v1/rounds")
    assert [r["farmer_total"] for r in body["rounds"]] == [1_000] and body["older"] is None
    assert len(body["rounds"][0]["tx_ids"]) == 1
    empty = await checked(await pool.client.get("/api/v1/rounds?before=1"), filled.document, "/api/v1/rounds")
    assert empty == {"rounds": [], "older": None}


@pytest.mark.parametrize(
    ("path", "status", "documented"),
    [
        ("/api/v1/farmers/" + "00" * 32, 404, "/api/v1/farmers/{launcher_id}"),
        ("/api/v1/farmers/zz", 400, "/api/v1/farmers/{launcher_id}"),
        ("/api/v1/farmers/" + "ab" * 31, 400, "/api/v1/farmers/{launcher_id}"),
        ("/api/v1/rounds?before=-1", 400, "/api/v1/rounds"),
        ("/api/v1/blocks?before=12", 400, "/api/v1/blocks"),
        ("/api/v1/blocks?before=12-" + "zz" * 32, 400, "/api/v1/blocks"),
        ("/api/v1/rounds?before=" + "9" * 30, 400, "/api/v1/rounds"),
        ("/api/v1/nothing/here", 404, None),
    ],
)
async def test_errors_are_json_and_documented(
    pool: PoolUnderTest, filled: Filled, path: str, status: int, documented: str | None
) -> None:
    response = await pool.client.get(path)
    body = await response.json()
    assert response.status == status and set(body) == {"error"}
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    if documented is not None:
        check(filled.document, documented, status, body)


async def test_a_store_that_fails_is_answered_503_in_json(world: World, filled: Filled, tmp_path: Path) -> None:
    # Nothing kept (the figures made as the pool starts would answer): every request reads the store.
    broken = await PoolUnderTest.start(world, tmp_path / "pool.sqlite", server={"page_cache_seconds": 0})
    try:
        await broken.ctx.store.close()  # every read fails now, as when the database is gone
        for path in ("/api/v1/pool", "/api/v1/blocks", "/api/v1/rounds", "/api/v1/farmers/{launcher_id}"):
            response = await broken.client.get(path.replace("{launcher_id}", "00" * 32))
            await checked(response, filled.document, path, status=503)
    finally:
        await broken.close()


async def test_figures_are_shared_for_page_cache_seconds(pool: PoolUnderTest, filled: Filled) -> None:
    """The blocks (and the pool's figures, the pool page's own object) are made once for their time: a block won
    meanwhile shows once they are made again. Last in the module: it adds a block."""
    shared = pool.app[BLOCKS]
    shared.seconds = 300
    try:
        before = (await (await pool.client.get("/api/v1/blocks")).json())["blocks"]
        record = filled.record
        claim = dataclasses.replace(make_claim("api won meanwhile", record), coin_height=300)
        assert await pool.ctx.store.add_reward_claim(claim)
        assert (await (await pool.client.get("/api/v1/blocks")).json())["blocks"] == before
        shared.seconds = 0
        after = (await (await pool.client.get("/api/v1/blocks")).json())["blocks"]
        assert [b["height"] for b in after] == [300] + [b["height"] for b in before]
    finally:
        shared.seconds = 0
