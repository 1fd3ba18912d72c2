"""Pool Protocol v2 over HTTP, beside v1, with a real PlotNFT v2 made by chia's wallet on the shared chain.

Requests are built and signed as chia 2.7.5's farmer builds them for a PlotNFT v2 (chia/farmer/farmer.py): GET
/v2/auth signed by the synthetic key's unhardened child 12381 over timestamp, launcher id and target puzzle hash; POST
/v2/farmer signed by the same key over PostFarmerPayload (token 0, the synthetic key as the authentication key); GET
and PUT /v2/farmer carrying the token only; a partial signed by the plot key and the synthetic key, its token in
``authentication_token_v2``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from pool.chia_adapter import (
    AugSchemeMPL,
    AuthenticationPayloadV1,
    PoolErrorCode,
    PrivateKey,
    PutFarmerPayload,
    PutFarmerRequest,
    bytes32,
    std_hash,
    uint64,
)
from pool.devnet.plots import PoolPlot
from pool.devnet.wallets import PlotNFTV2Info
from pool.devnet.world import World
from pool.http.pages import SESSION_COOKIE
from tests.http.farmer_requests import (
    RELATIVE_LOCK_HEIGHT,
    THRESHOLD,
    PoolUnderTest,
    SharedFarmer,
    fresh_proofs,
    partial_body,
    shared_farmer,
)
from tests.http.v2_requests import (
    PAYOUT,
    auth_params,
    farmer_params,
    post_body,
    token_for,
    v2_partial_body,
)

POOL_URL = "http://127.0.0.1:1"


@pytest_asyncio.fixture(scope="module")
async def pool(world: World, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PoolUnderTest]:
    started = await PoolUnderTest.start(world, tmp_path_factory.mktemp("pool") / "pool.sqlite")
    yield started
    await started.close()


@pytest_asyncio.fixture(scope="module")
async def plotnft(world: World) -> PlotNFTV2Info:
    created = await world.create_plotnft_v2(
        pool_url=POOL_URL, relative_lock_height=RELATIVE_LOCK_HEIGHT, fresh_launcher=False
    )
    await world.farm_blocks(THRESHOLD + 1)
    return created


@pytest_asyncio.fixture(scope="module")
async def plots(world: World, plotnft: PlotNFTV2Info) -> list[PoolPlot]:
    return await world.create_pool_plots(plotnft.reward_puzzle_hash, 1)


@pytest_asyncio.fixture(scope="module")
async def v1_farmer(world: World, pool: PoolUnderTest) -> SharedFarmer:
    return await shared_farmer(world, pool, "farmer one")  # shared: its state is never changed here


def error_code(reply: dict[str, Any]) -> PoolErrorCode:
    assert "error_code" in reply, reply
    return PoolErrorCode(reply["error_code"])


async def test_both_pool_info_answers_differ_only_in_the_version(pool: PoolUnderTest) -> None:
    v1, v2 = await pool.get("/pool_info", {}), await pool.get("/v2/pool_info", {})
    assert (v1.pop("protocol_version"), v2.pop("protocol_version")) == (1, 2)
    assert v1 == v2 and v1["pool_memoization"] == "0x80"


async def test_a_new_farmer_learns_from_auth_that_it_must_register(pool: PoolUnderTest, plotnft: PlotNFTV2Info) -> None:
    assert error_code(await pool.get("/v2/auth", auth_params(plotnft, pool))) is PoolErrorCode.FARMER_NOT_KNOWN


async def test_post_v2_farmer_refusals(pool: PoolUnderTest, plotnft: PlotNFTV2Info) -> None:
    other = AugSchemeMPL.key_gen(std_hash(b"another key"))
    # Signed by the synthetic key itself, not its v2 child.
    reply = await pool.send("POST", "/v2/farmer", post_body(plotnft, signer=plotnft.synthetic_secret_key))
    assert error_code(reply) is PoolErrorCode.INVALID_SIGNATURE
    # Another key than the chain's, correctly signed by that key's v2 child.
    forged = post_body(plotnft, key=other, signer=AugSchemeMPL.derive_child_sk_unhardened(other, 12381))
    reply = await pool.send("POST", "/v2/farmer", forged)
    assert error_code(reply) is PoolErrorCode.INVALID_SIGNATURE
    assert "not the synthetic key" in reply["error_message"]
    assert await pool.ctx.store.get_farmer(plotnft.launcher_id) is None


async def test_the_farmers_order_of_calls(pool: PoolUnderTest, plotnft: PlotNFTV2Info) -> None:
    # pool_info and auth answered 10 came before (tests above); now POST farmer, auth, GET farmer.
    reply = await pool.send("POST", "/v2/farmer", post_body(plotnft))
    assert "welcome_message" in reply, reply
    farmer = await pool.ctx.store.get_farmer(plotnft.launcher_id)
    assert farmer is not None and farmer.protocol_version == 2 and farmer.is_pool_member
    assert farmer.p2_singleton_puzzle_hash == plotnft.reward_puzzle_hash
    token = await token_for(pool, plotnft)
    got = await pool.get("/v2/farmer", farmer_params(plotnft.launcher_id, token))
    assert got["authentication_public_key"] == "0x" + bytes(plotnft.synthetic_public_key).hex()
    assert got["payout_instructions"] == PAYOUT
    again = await pool.send("POST", "/v2/farmer", post_body(plotnft))
    assert error_code(again) is PoolErrorCode.FARMER_ALREADY_KNOWN


async def test_token_refusals(pool: PoolUnderTest, plotnft: PlotNFTV2Info) -> None:
    window = pool.ctx.config.pool.authentication_token_timeout * 60
    old = auth_params(plotnft, pool, timestamp=pool.ctx.now() - window - 5)
    assert error_code(await pool.get("/v2/auth", old)) is PoolErrorCode.INVALID_AUTHENTICATION_TOKEN
    wrong_key = dict(auth_params(plotnft, pool))
    wrong_key["signature"] = auth_params(dataclasses.replace(plotnft, launcher_id=bytes32(b"\x01" * 32)), pool)[
        "signature"
    ]
    assert error_code(await pool.get("/v2/auth", wrong_key)) is PoolErrorCode.INVALID_SIGNATURE

    token = await token_for(pool, plotnft)
    # Launcher A's token for launcher B (another v2 farmer, of the same key).
    record = await pool.ctx.store.get_farmer(plotnft.launcher_id)
    assert record is not None
    other = bytes32(std_hash(b"launcher B"))
    await pool.ctx.store.add_farmer(dataclasses.replace(record, launcher_id=other))
    reply = await pool.get("/v2/farmer", farmer_params(other, token))
    assert error_code(reply) is PoolErrorCode.INVALID_AUTHENTICATION_TOKEN
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    for forged in ("", "garbage", tampered, "9" * 30 + token, "\u00b2" + token, token + "\u00e9", "1." + "é" * 64):
        reply = await pool.get("/v2/farmer", farmer_params(plotnft.launcher_id, forged))
        assert error_code(reply) is PoolErrorCode.INVALID_AUTHENTICATION_TOKEN, forged

    lifetime, grace = pool.ctx.config.pool.v2_token_lifetime, pool.ctx.config.pool.v2_token_grace
    try:
        pool.clock.offset = lifetime + grace - 2  # past its expiry, within the grace: a partial in flight counts
        assert "current_difficulty" in await pool.get("/v2/farmer", farmer_params(plotnft.launcher_id, token))
        pool.clock.offset = lifetime + grace + 2
        reply = await pool.get("/v2/farmer", farmer_params(plotnft.launcher_id, token))
        assert error_code(reply) is PoolErrorCode.INVALID_AUTHENTICATION_TOKEN
    finally:
        pool.clock.offset = 0


async def test_v2_partials_are_accepted_and_each_version_refused_on_the_others_routes(
    world: World, pool: PoolUnderTest, plotnft: PlotNFTV2Info, plots: list[PoolPlot], v1_farmer: SharedFarmer
) -> None:
    token = await token_for(pool, plotnft)
    sp, [found, *_] = await fresh_proofs(world, plots)
    body = v2_partial_body(plotnft, pool, token, found, sp)
    reply = await pool.send("POST", "/v2/partial", body)
    assert "new_difficulty" in reply, reply
    [partial] = await pool.ctx.store.recent_partials(plotnft.launcher_id, since=0)
    assert partial.difficulty == pool.ctx.config.difficulty.default
    # The v2 farmer on v1's routes, the v1 farmer on v2's: refused, saying which paths to use.
    reply = await pool.send("POST", "/partial", body)
    assert error_code(reply) is PoolErrorCode.REQUEST_FAILED and "/v2/" in reply["error_message"]
    sp1, [found1, *_] = await fresh_proofs(world, v1_farmer.plots)
    v1_body = partial_body(v1_farmer.launcher_id, pool.token, found1, sp1, v1_farmer.auth_sk)
    reply = await pool.send("POST", "/v2/partial", v1_body)
    assert error_code(reply) is PoolErrorCode.REQUEST_FAILED and "without /v2/" in reply["error_message"]
    assert "new_difficulty" in await pool.send("POST", "/partial", v1_body)
    reply = await pool.get(
        "/v2/auth", {**auth_params(plotnft, pool), "launcher_id": "0x" + v1_farmer.launcher_id.hex()}
    )
    assert error_code(reply) is PoolErrorCode.REQUEST_FAILED
    # A v2 partial without a token, or with another's signature.
    no_token = v2_partial_body(plotnft, pool, "", found, sp)
    assert error_code(await pool.send("POST", "/v2/partial", no_token)) is PoolErrorCode.INVALID_AUTHENTICATION_TOKEN


async def test_put_v2_farmer_by_token(pool: PoolUnderTest, plotnft: PlotNFTV2Info) -> None:
    token = await token_for(pool, plotnft)
    new_payout = std_hash(b"v2 new payout").hex()

    def body(key: PrivateKey, token: str) -> Any:
        payload = PutFarmerPayload(
            plotnft.launcher_id, uint64(0), key.get_g1(), new_payout, None, authentication_token_v2=token
        )
        return PutFarmerRequest(payload, None).to_json_dict()

    reply = await pool.send("PUT", "/v2/farmer", body(plotnft.synthetic_secret_key, token))
    assert reply == {"authentication_public_key": False, "payout_instructions": True, "suggested_difficulty": None}
    other = AugSchemeMPL.key_gen(std_hash(b"a key of its own"))
    assert error_code(await pool.send("PUT", "/v2/farmer", body(other, token))) is PoolErrorCode.REQUEST_FAILED
    forged = body(plotnft.synthetic_secret_key, "1" + token)
    assert error_code(await pool.send("PUT", "/v2/farmer", forged)) is PoolErrorCode.INVALID_AUTHENTICATION_TOKEN


async def test_both_login_paths_take_a_v2_farmer(pool: PoolUnderTest, plotnft: PlotNFTV2Info) -> None:
    message = AuthenticationPayloadV1(
        "get_login", plotnft.launcher_id, pool.target_puzzle_hash, uint64(pool.token)
    ).get_hash()
    params = {
        "launcher_id": plotnft.launcher_id.hex(),
        "authentication_token": str(pool.token),
        "signature": bytes(AugSchemeMPL.sign(plotnft.auth_secret_key, message)).hex(),
    }
    for path in ("/v2/login", "/login"):
        response = await pool.client.get(path, params=params, allow_redirects=False)
        assert response.status == 303, await response.text()
        pool.client.session.cookie_jar.clear()
        # The session opens the farmer's own page, a v2 farmer's as a v1 farmer's.
        session = response.cookies[SESSION_COOKIE].value
        page = await pool.client.get("/login", headers={"Cookie": f"{SESSION_COOKIE}={session}"})
        pool.client.session.cookie_jar.clear()
        assert page.status == 200 and plotnft.launcher_id.hex() in await page.text()
    # The synthetic key itself is not the login key.
    params["signature"] = bytes(AugSchemeMPL.sign(plotnft.synthetic_secret_key, message)).hex()
    reply = dict(await (await pool.client.get("/v2/login", params=params, allow_redirects=False)).json())
    assert error_code(reply) is PoolErrorCode.INVALID_SIGNATURE
