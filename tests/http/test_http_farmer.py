"""GET /pool_info, POST/PUT/GET /farmer and GET /login against a real node (devnet World), real keys and PlotNFTs.

The session's shared World (tests/conftest.py); the tests run in file order and build on each other's farmer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from pool.chain.singleton import follow_singleton, is_member_of_pool
from pool.chia_adapter import (
    AugSchemeMPL,
    PoolErrorCode,
    PoolSingletonState,
    PrivateKey,
    bytes32,
    encode_puzzle_hash,
    std_hash,
    uint32,
    uint64,
)
from pool.chia_adapter.simulation import (
    DEFAULT_TX_CONFIG,
    CreateNewWallet,
    CreateNewWalletType,
    NewPoolWalletInitialTargetState,
    WalletCreationMode,
    find_owner_sk,
)
from pool.devnet.world import PlotNFTInfo, World
from pool.http.pages import SESSION_COOKIE
from pool.store.models import FarmerChangeKind
from tests.http.farmer_requests import (
    THRESHOLD,
    PoolUnderTest,
    authenticated_params,
    buried_plotnft,
    post_farmer_body,
    put_farmer_body,
    strip_0x,
)

POOL_URL = "http://127.0.0.1:1"
PUT_COOLDOWN = 60


def key(seed: bytes) -> PrivateKey:
    return AugSchemeMPL.key_gen(std_hash(seed))


def next_token(pool: PoolUnderTest) -> int:
    """A token newer than any accepted so far (PUT /farmer refuses one not newer than the last it accepted): the
    pool's clock moves on by one token period."""
    pool.clock.offset += 60 * pool.ctx.config.pool.authentication_token_timeout
    return pool.token


def farmer_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The INFO lines pool.protocol.farmers wrote for the operator (joins, payout and key changes)."""
    return [r.getMessage() for r in caplog.records if r.name == "pool.protocol.farmers" and r.levelno == logging.INFO]


def error_code(reply: dict[str, Any]) -> PoolErrorCode:
    assert set(reply) == {"error_code", "error_message"}, reply
    assert reply["error_message"], reply
    return PoolErrorCode(reply["error_code"])


@pytest_asyncio.fixture(scope="module")
async def pool(world: World, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PoolUnderTest]:
    store_path = tmp_path_factory.mktemp("pool") / "pool.sqlite"
    started = await PoolUnderTest.start(world, store_path, difficulty={"put_cooldown": PUT_COOLDOWN})
    yield started
    await started.close()


@pytest_asyncio.fixture(scope="module")
async def plotnft(world: World) -> PlotNFTInfo:
    # fresh_launcher=False: the same launcher every run of the same tests on the (deterministic) chain, so its plots
    # stay cached; the launcher changes when the tests run before it on the shared chain change.
    return await buried_plotnft(world, pool_url=POOL_URL, fresh_launcher=False)


@pytest.fixture(scope="module")
def auth_sk() -> PrivateKey:
    return key(b"farmer authentication key")


@pytest.fixture(scope="module")
def payout_address() -> str:
    return encode_puzzle_hash(bytes32(std_hash(b"farmer payout")), "txch")


async def test_pool_info(pool: PoolUnderTest) -> None:
    info = await pool.get("/pool_info", {})
    config = pool.ctx.config
    assert info["name"] == config.pool.name
    assert info["fee"] == "0.01"  # as the operator wrote it
    assert info["protocol_version"] == 1
    assert info["relative_lock_height"] == config.pool.relative_lock_height
    assert info["minimum_difficulty"] == config.difficulty.minimum
    assert info["authentication_token_timeout"] == config.pool.authentication_token_timeout
    assert bytes32.from_hexstr(info["target_puzzle_hash"]) == config.pool.target_puzzle_hash


async def test_unknown_farmer_is_not_known(pool: PoolUnderTest, plotnft: PlotNFTInfo, auth_sk: PrivateKey) -> None:
    params = authenticated_params("get_farmer", plotnft.launcher_id, pool.target_puzzle_hash, auth_sk, pool.token)
    assert error_code(await pool.get("/farmer", params)) is PoolErrorCode.FARMER_NOT_KNOWN


async def test_post_farmer_refuses_an_old_token(
    pool: PoolUnderTest, plotnft: PlotNFTInfo, auth_sk: PrivateKey, payout_address: str
) -> None:
    timeout = pool.ctx.config.pool.authentication_token_timeout
    body = post_farmer_body(plotnft, auth_sk, pool.token - timeout - 1, payout_address)
    assert error_code(await pool.send("POST", "/farmer", body)) is PoolErrorCode.INVALID_AUTHENTICATION_TOKEN


async def test_post_farmer_must_be_signed_by_the_owner(
    pool: PoolUnderTest, plotnft: PlotNFTInfo, auth_sk: PrivateKey, payout_address: str
) -> None:
    body = post_farmer_body(plotnft, auth_sk, pool.token, payout_address, signer=auth_sk)
    assert error_code(await pool.send("POST", "/farmer", body)) is PoolErrorCode.INVALID_SIGNATURE


@pytest.mark.parametrize(
    "instructions",
    [
        encode_puzzle_hash(bytes32(b"\x01" * 32), "xch"),  # a mainnet address on a test network
        "txch1notanaddress",
        "ab" * 31,  # 31 bytes of hex
        "",
    ],
)
async def test_post_farmer_refuses_bad_payout_instructions(
    pool: PoolUnderTest, plotnft: PlotNFTInfo, auth_sk: PrivateKey, instructions: str
) -> None:
    body = post_farmer_body(plotnft, auth_sk, pool.token, instructions)
    assert error_code(await pool.send("POST", "/farmer", body)) is PoolErrorCode.INVALID_PAYOUT_INSTRUCTIONS


async def test_post_farmer_for_a_launcher_that_does_not_exist(
    pool: PoolUnderTest, plotnft: PlotNFTInfo, auth_sk: PrivateKey, payout_address: str
) -> None:
    unknown = dataclasses.replace(plotnft, launcher_id=bytes32(std_hash(b"no such launcher")))
    body = post_farmer_body(unknown, auth_sk, pool.token, payout_address)
    assert error_code(await pool.send("POST", "/farmer", body)) is PoolErrorCode.INVALID_SINGLETON


async def test_post_farmer_waits_until_the_singleton_is_buried(
    world: World, plotnft: PlotNFTInfo, auth_sk: PrivateKey, payout_address: str, tmp_path: Path
) -> None:
    strict = await PoolUnderTest.start(
        world, tmp_path / "strict.sqlite", chain={"confirmation_security_threshold": world.peak_height + 10}
    )
    try:
        body = post_farmer_body(plotnft, auth_sk, strict.token, payout_address)
        reply = await strict.send("POST", "/farmer", body)
        assert error_code(reply) is PoolErrorCode.INVALID_SINGLETON
        assert "buried" in reply["error_message"]
    finally:
        await strict.close()


async def test_post_farmer_with_a_singleton_of_another_pool(
    world: World, pool: PoolUnderTest, auth_sk: PrivateKey, payout_address: str
) -> None:
    elsewhere = await buried_plotnft(
        world,
        pool_url="http://127.0.0.1:2",
        target_puzzle_hash=bytes32(std_hash(b"another pool")),
        fresh_launcher=False,
    )
    body = post_farmer_body(elsewhere, auth_sk, pool.token, payout_address)
    reply = await pool.send("POST", "/farmer", body)
    assert error_code(reply) is PoolErrorCode.INVALID_SINGLETON
    assert "does not farm to this pool" in reply["error_message"]


async def test_post_farmer_with_a_forged_plotnft(world: World, pool: PoolUnderTest, payout_address: str) -> None:
    """A real singleton that self-pools to its owner while its launcher data claims FARMING_TO_POOL to this pool:
    refused and remembered for a while (never registered, so no partial of it is ever accepted)."""
    forged = await world.create_forged_plotnft(
        claimed_target_puzzle_hash=pool.target_puzzle_hash,
        claimed_relative_lock_height=pool.ctx.config.pool.relative_lock_height,
    )
    await world.farm_blocks(THRESHOLD + 1)
    # Signed by the owner key the launcher data names, as a real farmer would: the chain check alone refuses it.
    body = post_farmer_body(forged, forged.authentication_secret_key, pool.token, payout_address)
    reply = await pool.send("POST", "/farmer", body)
    assert error_code(reply) is PoolErrorCode.INVALID_SINGLETON
    assert forged.launcher_id.hex() in reply["error_message"] and "puzzle hash" in reply["error_message"]
    assert await pool.ctx.store.get_farmer(forged.launcher_id) is None
    again = await pool.send("POST", "/farmer", body)
    assert error_code(again) is PoolErrorCode.INVALID_SINGLETON and "refused recently" in again["error_message"]


@pytest.mark.parametrize(
    "raw",
    [
        b"this is not json",
        b"\xff\xfe garbage",
        b"[1, 2, 3]",
        b'{"payload": {}, "signature": "0x00"}',
        b"{}",
    ],
)
async def test_post_farmer_garbage(pool: PoolUnderTest, raw: bytes) -> None:
    assert error_code(await pool.send_raw("POST", "/farmer", raw)) is PoolErrorCode.REQUEST_FAILED


async def test_post_farmer_with_an_invalid_key(
    pool: PoolUnderTest, plotnft: PlotNFTInfo, auth_sk: PrivateKey, payout_address: str
) -> None:
    body = post_farmer_body(plotnft, auth_sk, pool.token, payout_address)
    body["payload"]["authentication_public_key"] = "0x" + "00" * 48  # not a point of the curve
    assert error_code(await pool.send("POST", "/farmer", body)) is PoolErrorCode.REQUEST_FAILED


async def test_oversized_body_is_refused(pool: PoolUnderTest) -> None:
    raw = json.dumps({"padding": "x" * pool.ctx.config.partials.max_body_bytes}).encode()
    reply = await pool.send_raw("POST", "/farmer", raw)
    assert error_code(reply) is PoolErrorCode.REQUEST_FAILED
    assert "larger than" in reply["error_message"]


async def test_post_farmer_registers(
    pool: PoolUnderTest,
    plotnft: PlotNFTInfo,
    auth_sk: PrivateKey,
    payout_address: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pool.protocol.farmers")
    body = post_farmer_body(plotnft, auth_sk, pool.token, payout_address, suggested_difficulty=7)
    reply = await pool.send("POST", "/farmer", body)
    assert reply == {"welcome_message": pool.ctx.config.pool.welcome_message}
    # The operator's line: launcher id, payout address, the public authentication key (never a private key).
    [joined] = farmer_lines(caplog)
    assert joined.startswith(f"farmer {plotnft.launcher_id.hex()} joined: payout address {payout_address}")
    assert bytes(auth_sk.get_g1()).hex() in joined and bytes(auth_sk).hex() not in joined

    farmer = await pool.ctx.store.get_farmer(plotnft.launcher_id)
    assert farmer is not None
    assert farmer.p2_singleton_puzzle_hash == plotnft.p2_singleton_puzzle_hash
    assert farmer.authentication_public_key == auth_sk.get_g1()
    assert farmer.payout_instructions == payout_address
    assert encode_puzzle_hash(farmer.payout_puzzle_hash, "txch") == payout_address
    assert farmer.difficulty == 7
    assert farmer.points == 0
    assert farmer.is_pool_member
    assert farmer.delay_time >= 3600
    assert farmer.singleton_tip_state.owner_pubkey == plotnft.owner_public_key
    assert farmer.singleton_tip_state.target_puzzle_hash == pool.target_puzzle_hash


async def test_post_farmer_twice_is_already_known(
    pool: PoolUnderTest, plotnft: PlotNFTInfo, auth_sk: PrivateKey, payout_address: str
) -> None:
    body = post_farmer_body(plotnft, auth_sk, pool.token, payout_address)
    assert error_code(await pool.send("POST", "/farmer", body)) is PoolErrorCode.FARMER_ALREADY_KNOWN


@pytest.mark.parametrize("with_0x", [True, False])
async def test_get_farmer(
    pool: PoolUnderTest, plotnft: PlotNFTInfo, auth_sk: PrivateKey, payout_address: str, with_0x: bool
) -> None:
    params = authenticated_params("get_farmer", plotnft.launcher_id, pool.target_puzzle_hash, auth_sk, pool.token)
    assert params["launcher_id"].startswith("0x") and params["signature"].startswith("0x")
    reply = await pool.get("/farmer", params if with_0x else strip_0x(params))
    assert reply == {
        "authentication_public_key": "0x" + bytes(auth_sk.get_g1()).hex(),
        "payout_instructions": payout_address,
        "current_difficulty": 7,
        "current_points": 0,
    }


async def test_get_farmer_refusals(pool: PoolUnderTest, plotnft: PlotNFTInfo, auth_sk: PrivateKey) -> None:
    launcher, target = plotnft.launcher_id, pool.target_puzzle_hash
    other_key = authenticated_params("get_farmer", launcher, target, key(b"someone else"), pool.token)
    assert error_code(await pool.get("/farmer", other_key)) is PoolErrorCode.INVALID_SIGNATURE
    login_signature = authenticated_params("get_login", launcher, target, auth_sk, pool.token)
    assert error_code(await pool.get("/farmer", login_signature)) is PoolErrorCode.INVALID_SIGNATURE
    old = authenticated_params("get_farmer", launcher, target, auth_sk, pool.token - 100)
    assert error_code(await pool.get("/farmer", old)) is PoolErrorCode.INVALID_AUTHENTICATION_TOKEN


@pytest.mark.parametrize(
    "change",
    [
        {"signature": None},
        {"launcher_id": "0x1234"},
        {"launcher_id": "zz" * 32},
        {"authentication_token": "-1"},
        {"authentication_token": "ten"},
        {"signature": "0x" + "00" * 96},
    ],
)
async def test_get_farmer_malformed(
    pool: PoolUnderTest, plotnft: PlotNFTInfo, auth_sk: PrivateKey, change: dict[str, Any]
) -> None:
    params = authenticated_params("get_farmer", plotnft.launcher_id, pool.target_puzzle_hash, auth_sk, pool.token)
    params.update(change)
    params = {name: value for name, value in params.items() if value is not None}
    assert error_code(await pool.get("/farmer", params)) is PoolErrorCode.REQUEST_FAILED


async def test_login_page(pool: PoolUnderTest, plotnft: PlotNFTInfo, auth_sk: PrivateKey) -> None:
    # As the farmer builds the link: plain hex, no 0x.
    params = strip_0x(
        authenticated_params("get_login", plotnft.launcher_id, pool.target_puzzle_hash, auth_sk, pool.token)
    )
    # Nothing about any farmer without a signature or a session.
    pool.client.session.cookie_jar.clear()
    anonymous = await pool.client.get("/login")
    assert anonymous.status == 401
    assert plotnft.launcher_id.hex() not in await anonymous.text()
    # A session cookie that is not UTF-8 (aiohttp hands it on with surrogates) is no session: 401, never a failure.
    for request in (b"GET /login", b"POST /login/settings"):
        server = pool.client.server
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            writer.write(request + b" HTTP/1.1\r\nHost: pool\r\nConnection: close\r\nContent-Length: 0\r\n")
            writer.write(f"Cookie: {SESSION_COOKIE}=".encode() + b"\xff\xfe" * 8 + b"\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readline(), 30)
            assert head.startswith(b"HTTP/1.1 401"), (request, head)
        finally:
            writer.close()

    response = await pool.client.get("/login", params=params)
    # The signed link opens a session and sends the browser to the plain /login (a reload needs no signature).
    assert [r.status for r in response.history] == [303]
    cookie = response.history[0].headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert f"Max-Age={pool.ctx.config.server.session_lifetime}" in cookie
    assert response.url.path == "/login" and not response.url.query
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert plotnft.launcher_id.hex() in page
    assert '<div class="value" id="difficulty">7</div>' in page
    reloaded = await pool.client.get("/login")
    assert reloaded.status == 200 and plotnft.launcher_id.hex() in await reloaded.text()

    # The session expires: then the page is gone again.
    pool.clock.offset += pool.ctx.config.server.session_lifetime
    try:
        expired = await pool.client.get("/login")
        assert expired.status == 401
        assert plotnft.launcher_id.hex() not in await expired.text()
    finally:
        pool.clock.offset -= pool.ctx.config.server.session_lifetime
    pool.client.session.cookie_jar.clear()

    wrong_method = authenticated_params("get_farmer", plotnft.launcher_id, pool.target_puzzle_hash, auth_sk, pool.token)
    assert error_code(await pool.get("/login", wrong_method)) is PoolErrorCode.INVALID_SIGNATURE


async def test_put_farmer_payout_instructions(
    pool: PoolUnderTest,
    plotnft: PlotNFTInfo,
    auth_sk: PrivateKey,
    payout_address: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pool.protocol.farmers")
    new_payout = std_hash(b"new payout").hex()  # a puzzle hash in hex, without 0x
    body = put_farmer_body(
        plotnft.launcher_id, plotnft.owner_secret_key, next_token(pool), payout_instructions=new_payout
    )
    reply = await pool.send("PUT", "/farmer", body)
    assert reply == {"authentication_public_key": None, "payout_instructions": True, "suggested_difficulty": None}
    new_address = encode_puzzle_hash(bytes32(std_hash(b"new payout")), "txch")
    [changed] = farmer_lines(caplog)
    assert changed.startswith(
        f"farmer {plotnft.launcher_id.hex()} changed its payout address: {new_address} (was {payout_address})"
    )
    caplog.clear()
    farmer = await pool.ctx.store.get_farmer(plotnft.launcher_id)
    assert farmer is not None
    assert farmer.payout_instructions == new_payout
    assert farmer.payout_puzzle_hash == std_hash(b"new payout")
    # Kept in the farmer's history too, written with the change.
    [newest, *_] = await pool.ctx.store.farmer_history(plotnft.launcher_id)
    assert (newest.kind, newest.old, newest.new) == (FarmerChangeKind.PAYOUT_INSTRUCTIONS, payout_address, new_payout)

    # The same again changes nothing.
    body = put_farmer_body(
        plotnft.launcher_id, plotnft.owner_secret_key, next_token(pool), payout_instructions=new_payout
    )
    reply = await pool.send("PUT", "/farmer", body)
    assert reply == {"authentication_public_key": None, "payout_instructions": False, "suggested_difficulty": None}
    assert farmer_lines(caplog) == []  # nothing changed, nothing logged

    # chia 2.7.4's farmer signs the six-field payload hash (authentication_token_v2 included): accepted too.
    body = put_farmer_body(
        plotnft.launcher_id,
        plotnft.owner_secret_key,
        next_token(pool),
        auth_sk=auth_sk,
        payout_instructions=std_hash(b"six fields").hex(),
        sign_six_fields=True,
    )
    reply = await pool.send("PUT", "/farmer", body)
    assert reply == {"authentication_public_key": False, "payout_instructions": True, "suggested_difficulty": None}

    # Back to the address, as the farmer does when GET /farmer shows instructions other than its own.
    body = put_farmer_body(
        plotnft.launcher_id,
        plotnft.owner_secret_key,
        next_token(pool),
        auth_sk=auth_sk,
        payout_instructions=payout_address,
    )
    reply = await pool.send("PUT", "/farmer", body)
    assert reply == {"authentication_public_key": False, "payout_instructions": True, "suggested_difficulty": None}


async def test_put_farmer_refusals(
    pool: PoolUnderTest, plotnft: PlotNFTInfo, auth_sk: PrivateKey, payout_address: str
) -> None:
    launcher, owner = plotnft.launcher_id, plotnft.owner_secret_key
    next_token(pool)  # none of these is accepted, so none uses the token up
    # The six-field payload (as chia 2.7.4's farmer signs it) by another key than the owner's.
    six = put_farmer_body(launcher, auth_sk, pool.token, payout_instructions=payout_address, sign_six_fields=True)
    assert error_code(await pool.send("PUT", "/farmer", six)) is PoolErrorCode.INVALID_SIGNATURE
    by_auth_key = put_farmer_body(launcher, auth_sk, pool.token, payout_instructions=payout_address)
    assert error_code(await pool.send("PUT", "/farmer", by_auth_key)) is PoolErrorCode.INVALID_SIGNATURE
    bad_payout = put_farmer_body(launcher, owner, pool.token, payout_instructions="xch1nope")
    assert error_code(await pool.send("PUT", "/farmer", bad_payout)) is PoolErrorCode.INVALID_PAYOUT_INSTRUCTIONS
    old_token = put_farmer_body(launcher, owner, pool.token - 50, payout_instructions=payout_address)
    assert error_code(await pool.send("PUT", "/farmer", old_token)) is PoolErrorCode.INVALID_AUTHENTICATION_TOKEN
    unknown = put_farmer_body(bytes32(b"\x07" * 32), owner, pool.token, payout_instructions=payout_address)
    assert error_code(await pool.send("PUT", "/farmer", unknown)) is PoolErrorCode.FARMER_NOT_KNOWN
    assert error_code(await pool.send_raw("PUT", "/farmer", b"{")) is PoolErrorCode.REQUEST_FAILED
    farmer = await pool.ctx.store.get_farmer(launcher)
    assert farmer is not None and farmer.payout_instructions == payout_address


async def login_cookie(pool: PoolUnderTest, plotnft: PlotNFTInfo, auth_sk: PrivateKey) -> str:
    """The session token a signed GET /login sets (the redirect is not followed, no cookie is kept)."""
    params = authenticated_params("get_login", plotnft.launcher_id, pool.target_puzzle_hash, auth_sk, pool.token)
    response = await pool.client.get("/login", params={k: str(v) for k, v in params.items()}, allow_redirects=False)
    assert response.status == 303, await response.text()
    pool.client.session.cookie_jar.clear()
    morsel = response.cookies[SESSION_COOKIE]
    return morsel.value


async def page_opens(pool: PoolUnderTest, session_token: str) -> bool:
    response = await pool.client.get("/login", headers={"Cookie": f"{SESSION_COOKIE}={session_token}"})
    pool.client.session.cookie_jar.clear()
    return response.status == 200


async def test_settings_form_refuses_without_its_token_and_never_fails(
    pool: PoolUnderTest, plotnft: PlotNFTInfo, auth_sk: PrivateKey
) -> None:
    """POST /login/settings: no session, no CSRF token, malformed values and bodies get 401, 403 or 400 (never a
    500), and nothing is saved until a good form comes with its token."""
    from pool.http.settings import csrf_token

    session = await login_cookie(pool, plotnft, auth_sk)
    cookie = {"Cookie": f"{SESSION_COOKIE}={session}"}
    token = csrf_token(session)

    async def post(data: Any, headers: dict[str, str] | None = None) -> int:
        response = await pool.client.post("/login/settings", data=data, headers=headers, allow_redirects=False)
        pool.client.session.cookie_jar.clear()
        return response.status

    assert await post({"csrf_token": token, "min_payout": "5"}) == 401  # no session
    assert await post({"min_payout": "5"}, cookie) == 403
    assert await post({"csrf_token": csrf_token("another session"), "min_payout": "5"}, cookie) == 403
    assert await post(b'{"csrf_token": "x"}', {**cookie, "Content-Type": "application/json"}) == 403
    assert await post({"csrf_token": "\u00e9" * len(token), "min_payout": "5"}, cookie) == 403  # not ASCII
    for field, value in [
        ("min_payout", "1e3"),
        ("min_payout", "-1"),
        ("min_payout", "0.0000000000001"),
        ("min_payout", "\u0661"),
        ("min_payout", "999999999"),  # more mojos than the store's 64-bit integers hold (and than there are)
        ("difficulty_preset", "9" * 30),
        ("difficulty_preset", "0"),
        ("difficulty_preset", "1.5"),
        ("webhook_url", "javascript:alert(1)"),
        ("webhook_url", "https://[::1"),
        ("webhook_url", "https://example.com:99999/"),
        ("webhook_url", "https://" + "a" * 600),
    ]:
        assert await post({"csrf_token": token, field: value}, cookie) == 400, (field, value)
    assert await pool.ctx.store.setting_changes(plotnft.launcher_id) == []

    good = {"csrf_token": token, "min_payout": "2.5", "difficulty_preset": "", "webhook_url": "http://127.0.0.1:9/x"}
    assert await post(good, cookie) == 303
    settings = await pool.ctx.store.farmer_settings(plotnft.launcher_id)
    assert (settings.min_payout, settings.difficulty_preset) == (2_500_000_000_000, None)
    assert await post({"csrf_token": token}, cookie) == 303  # every field empty: the pool's defaults again
    assert len(await pool.ctx.store.setting_changes(plotnft.launcher_id)) == 4


async def test_logins_beyond_the_cap_close_the_oldest_sessions(
    pool: PoolUnderTest, plotnft: PlotNFTInfo, auth_sk: PrivateKey
) -> None:
    cap = pool.ctx.config.server.sessions_per_farmer
    tokens = []
    for _ in range(cap + 2):
        tokens.append(await login_cookie(pool, plotnft, auth_sk))
        pool.clock.offset += 1  # one a second: "oldest" is by the second a session was opened
    assert [await page_opens(pool, token) for token in tokens] == [False, False] + [True] * cap


async def test_put_farmer_new_authentication_key(
    pool: PoolUnderTest, plotnft: PlotNFTInfo, auth_sk: PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pool.protocol.farmers")
    session = await login_cookie(pool, plotnft, auth_sk)
    assert await page_opens(pool, session)
    new_sk = key(b"farmer authentication key 2")
    body = put_farmer_body(plotnft.launcher_id, plotnft.owner_secret_key, next_token(pool), auth_sk=new_sk)
    reply = await pool.send("PUT", "/farmer", body)
    assert reply == {"authentication_public_key": True, "payout_instructions": None, "suggested_difficulty": None}
    new_key, old_key = bytes(new_sk.get_g1()).hex(), bytes(auth_sk.get_g1()).hex()
    assert farmer_lines(caplog) == [
        f"farmer {plotnft.launcher_id.hex()} changed its authentication key: {new_key} (was {old_key}), from 127.0.0.1"
    ]
    # The session was opened with the old key: whoever held it no longer sees the farmer's page.
    assert not await page_opens(pool, session)
    launcher, target = plotnft.launcher_id, pool.target_puzzle_hash
    old = authenticated_params("get_farmer", launcher, target, auth_sk, pool.token)
    assert error_code(await pool.get("/farmer", old)) is PoolErrorCode.INVALID_SIGNATURE
    new = authenticated_params("get_farmer", launcher, target, new_sk, pool.token)
    assert (await pool.get("/farmer", new))["authentication_public_key"] == "0x" + bytes(new_sk.get_g1()).hex()

    body = put_farmer_body(plotnft.launcher_id, plotnft.owner_secret_key, next_token(pool), auth_sk=auth_sk)
    assert (await pool.send("PUT", "/farmer", body))["authentication_public_key"] is True
    # Both changes are in the farmer's history, which its page shows.
    back, there = (await pool.ctx.store.farmer_history(plotnft.launcher_id))[:2]
    assert [(c.kind, c.old, c.new) for c in (there, back)] == [
        (FarmerChangeKind.AUTHENTICATION_KEY, old_key, new_key),
        (FarmerChangeKind.AUTHENTICATION_KEY, new_key, old_key),
    ]
    response = await pool.client.get(
        "/login", headers={"Cookie": f"{SESSION_COOKIE}={await login_cookie(pool, plotnft, auth_sk)}"}
    )
    page = await response.text()
    pool.client.session.cookie_jar.clear()
    assert f"authentication key changed from {old_key} to {new_key}" in page
    assert f"authentication key changed from {new_key} to {old_key}" in page
    assert "joined the pool, payout instructions" in page


async def test_put_farmer_difficulty_takes_effect_after_the_cooldown(
    pool: PoolUnderTest, plotnft: PlotNFTInfo, auth_sk: PrivateKey
) -> None:
    body = put_farmer_body(plotnft.launcher_id, plotnft.owner_secret_key, next_token(pool), suggested_difficulty=50)
    reply = await pool.send("PUT", "/farmer", body)
    assert reply == {"authentication_public_key": None, "payout_instructions": None, "suggested_difficulty": True}
    # A captured PUT replayed within the token window is refused: its token is not newer than the last accepted.
    assert error_code(await pool.send("PUT", "/farmer", body)) is PoolErrorCode.INVALID_AUTHENTICATION_TOKEN

    def params() -> dict[str, Any]:
        return authenticated_params("get_farmer", plotnft.launcher_id, pool.target_puzzle_hash, auth_sk, pool.token)

    assert (await pool.get("/farmer", params()))["current_difficulty"] == 7
    pool.clock.offset += PUT_COOLDOWN + 1
    try:
        assert (await pool.get("/farmer", params()))["current_difficulty"] == 50
    finally:
        pool.clock.offset -= PUT_COOLDOWN + 1
    await pool.ctx.store.set_difficulty(plotnft.launcher_id, 7, pool.ctx.now())


async def test_unexpected_failure_is_a_server_exception(
    pool: PoolUnderTest, plotnft: PlotNFTInfo, auth_sk: PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(launcher_id: bytes32) -> None:
        raise RuntimeError("disk on fire: secret detail")

    monkeypatch.setattr(pool.ctx.store, "get_farmer", broken)
    params = authenticated_params("get_farmer", plotnft.launcher_id, pool.target_puzzle_hash, auth_sk, pool.token)
    reply = await pool.get("/farmer", params)
    assert error_code(reply) is PoolErrorCode.SERVER_EXCEPTION
    assert "secret detail" not in reply["error_message"] and "Traceback" not in reply["error_message"]


async def test_unknown_route_is_404(pool: PoolUnderTest) -> None:
    assert (await pool.client.get("/no_such_endpoint")).status == 404


async def test_delay_time_too_short(
    world: World, pool: PoolUnderTest, auth_sk: PrivateKey, payout_address: str
) -> None:
    response = await world.farmer_wallet_client.create_new_wallet(
        CreateNewWallet(
            wallet_type=CreateNewWalletType.POOL_WALLET,
            initial_target_state=NewPoolWalletInitialTargetState(
                state=PoolSingletonState.FARMING_TO_POOL.name,
                target_puzzle_hash=pool.target_puzzle_hash,
                pool_url=POOL_URL,
                relative_lock_height=uint32(pool.ctx.config.pool.relative_lock_height),
            ),
            mode=WalletCreationMode.NEW,
            fee=uint64(0),
            push=True,
            p2_singleton_delay_time=uint64(600),
        ),
        DEFAULT_TX_CONFIG,
    )
    launcher_id = response.launcher_id
    assert launcher_id is not None
    for _ in range(20):
        record = await pool.ctx.node.coin_record(launcher_id)
        if record is not None and record.spent:
            break
        await world.farm_blocks(1)
    await world.farm_blocks(THRESHOLD + 1)
    view = await follow_singleton(
        pool.ctx.node,
        launcher_id,
        peak_height=world.peak_height,
        confirmation_security_threshold=THRESHOLD,
        genesis_challenge=world.constants.GENESIS_CHALLENGE,
    )
    assert view.delay_time == 600
    owner = find_owner_sk([world.block_tools.farmer_master_sk], view.state.owner_pubkey)
    assert owner is not None
    short = PlotNFTInfo(
        launcher_id=launcher_id,
        p2_singleton_puzzle_hash=view.p2_singleton_puzzle_hash,
        owner_public_key=view.state.owner_pubkey,
        owner_secret_key=owner[0],
        authentication_secret_key=auth_sk,
        wallet_id=0,
        pool_url=POOL_URL,
        target_puzzle_hash=pool.target_puzzle_hash,
        relative_lock_height=pool.ctx.config.pool.relative_lock_height,
    )
    body = post_farmer_body(short, auth_sk, pool.token, payout_address)
    assert error_code(await pool.send("POST", "/farmer", body)) is PoolErrorCode.DELAY_TIME_TOO_SHORT


async def test_leaving_the_pool(world: World, pool: PoolUnderTest, plotnft: PlotNFTInfo, payout_address: str) -> None:
    """A leaving farmer stays a member for relative_lock_height blocks, and can still update its settings."""
    relative_lock_height = pool.ctx.config.pool.relative_lock_height
    await world.leave_pool(plotnft)
    await world.farm_blocks(THRESHOLD + 1)
    view = await follow_singleton(
        pool.ctx.node,
        plotnft.launcher_id,
        peak_height=world.peak_height,
        confirmation_security_threshold=THRESHOLD,
        genesis_challenge=world.constants.GENESIS_CHALLENGE,
    )
    assert view.state.state == PoolSingletonState.LEAVING_POOL.value
    assert view.state_height <= view.tip_height <= view.coin_height
    assert is_member_of_pool(view.state, pool.ctx.config.pool, world.peak_height, view.coin_height)
    later = view.coin_height + relative_lock_height  # the waiting room's escape is relative to the live coin
    assert not is_member_of_pool(view.state, pool.ctx.config.pool, later, view.coin_height)

    body = put_farmer_body(
        plotnft.launcher_id, plotnft.owner_secret_key, next_token(pool), payout_instructions="ab" * 32
    )
    assert (await pool.send("PUT", "/farmer", body))["payout_instructions"] is True
