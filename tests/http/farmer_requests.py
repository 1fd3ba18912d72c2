"""Test helpers: a pool's HTTP app on a devnet World, and requests built and signed exactly as chia's farmer does.

The farmer (chia/farmer/farmer.py, farmer_api.py in 2.7.5) sends POST/PUT bodies as ``request.to_json_dict()`` and GET
parameters as the request's ``to_json_dict()``; it signs POST /farmer over PostFarmerPayload's hash with the owner key,
PUT /farmer over the classic five-field payload with the owner key, GET /farmer and GET /login over
AuthenticationPayloadV1 with the authentication key, and a partial with the plot key (harvester + farmer halves) and
the authentication key aggregated.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from pool.chain.node_rpc import RpcFullNode
from pool.chain.wallet_rpc import WalletRpc
from pool.chia_adapter import (
    AugSchemeMPL,
    AuthenticationPayloadV1,
    GetFarmerRequestV1,
    PostFarmerPayload,
    PostFarmerRequest,
    PostPartialPayload,
    PostPartialRequest,
    PrivateKey,
    PutFarmerPayload,
    PutFarmerRequest,
    bytes32,
    chia_config,
    consensus_constants_for,
    encode_puzzle_hash,
    std_hash,
    uint64,
)
from pool.config import PoolConfig
from pool.context import PoolContext
from pool.devnet.pool_config import world_pool_config
from pool.devnet.world import FoundProof, PlotNFTInfo, PoolPlot, SignagePointInfo, World
from pool.http.app import SIGNAGE_POINTS
from pool.http.keys import RATE_LIMITS
from pool.protocol.auth import current_authentication_token
from pool.protocol.farmers import ClassicPutFarmerPayload
from pool.protocol.rate_limits import RateLimits
from pool.protocol.signage_points import SignagePointCache
from pool.server import build_application
from pool.store.sqlite import SqlitePoolStore

THRESHOLD = 2  # confirmation_security_threshold of the test pools
RELATIVE_LOCK_HEIGHT = 5
HARVESTER_ID = bytes32(b"\x11" * 32)


@dataclass
class Clock:
    """The pool's clock: real time plus an offset a test may move (the node's signage point times are real)."""

    offset: float = 0

    def __call__(self) -> int:
        return int(time.time() + self.offset)

    def precise(self) -> float:
        return time.time() + self.offset


def pool_config_for(world: World, store_path: Path, **sections: dict[str, Any]) -> PoolConfig:
    """The devnet pool configuration with some fields of some sections replaced (e.g. partials={...})."""
    config = world_pool_config(
        world,
        store_path=store_path,
        server_port=0,
        relative_lock_height=RELATIVE_LOCK_HEIGHT,
        confirmation_threshold=THRESHOLD,
    )
    replaced = {name: dataclasses.replace(getattr(config, name), **fields) for name, fields in sections.items()}
    return dataclasses.replace(config, **replaced)


@dataclass
class PoolUnderTest:
    ctx: PoolContext
    client: TestClient[Any, Any]
    clock: Clock

    @classmethod
    async def start(cls, world: World, store_path: Path, **sections: dict[str, Any]) -> PoolUnderTest:
        config = pool_config_for(world, store_path, **sections)
        store = SqlitePoolStore(store_path)
        await store.open()
        node = await RpcFullNode.connect(config.chain.full_node)
        wallet = await WalletRpc.connect(config.chain)
        # The constants the way production builds them: from the node's chia root config and the network name.
        constants = consensus_constants_for(config.chain.network, chia_config(config.chain.full_node.chia_root))
        clock = Clock()
        ctx = PoolContext(
            config=config,
            store=store,
            node=node,
            wallet=wallet,
            constants=constants,
            now=clock,
            precise_clock=clock.precise,
        )
        client: TestClient[Any, Any] = TestClient(TestServer(build_application(ctx, with_loops=False)))
        await client.start_server()
        return cls(ctx, client, clock)

    async def close(self) -> None:
        await self.client.close()
        await self.ctx.node.close()
        await self.ctx.wallet.close()
        await self.ctx.store.close()

    @property
    def app(self) -> web.Application:
        app: web.Application = self.client.app
        return app

    @property
    def signage_points(self) -> SignagePointCache:
        """The app's signage point cache (the one POST /partial looks them up in)."""
        return self.app[SIGNAGE_POINTS]

    @property
    def rate_limits(self) -> RateLimits:
        return self.app[RATE_LIMITS]

    @property
    def token(self) -> int:
        return current_authentication_token(self.ctx.now(), self.ctx.config.pool.authentication_token_timeout)

    @property
    def target_puzzle_hash(self) -> bytes32:
        return self.ctx.config.pool.target_puzzle_hash

    async def get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.get(path, params=_query(params))
        assert response.status == 200, await response.text()
        return dict(await response.json())

    async def send(self, method: str, path: str, body: Any) -> dict[str, Any]:
        response = await self.client.request(method, path, json=body)
        assert response.status == 200, await response.text()
        return dict(await response.json())

    async def send_raw(self, method: str, path: str, data: bytes) -> dict[str, Any]:
        response = await self.client.request(method, path, data=data)
        assert response.status == 200, await response.text()
        return dict(await response.json())


def _query(params: dict[str, Any]) -> dict[str, str]:
    """What aiohttp's client makes of the farmer's to_json_dict() parameters (ints in decimal, strings as they are)."""
    return {name: str(value) for name, value in params.items()}


# ---------------------------------------------------------------------------------------------------- requests


def post_farmer_body(
    plotnft: PlotNFTInfo,
    auth_sk: PrivateKey,
    token: int,
    payout_instructions: str,
    suggested_difficulty: int | None = None,
    signer: PrivateKey | None = None,
) -> dict[str, Any]:
    payload = PostFarmerPayload(
        plotnft.launcher_id,
        uint64(token),
        auth_sk.get_g1(),
        payout_instructions,
        None if suggested_difficulty is None else uint64(suggested_difficulty),
    )
    signature = AugSchemeMPL.sign(signer or plotnft.owner_secret_key, payload.get_hash())
    return PostFarmerRequest(payload, signature).to_json_dict()


def put_farmer_body(
    launcher_id: bytes32,
    owner_sk: PrivateKey,
    token: int,
    *,
    auth_sk: PrivateKey | None = None,
    payout_instructions: str | None = None,
    suggested_difficulty: int | None = None,
    sign_six_fields: bool = False,
) -> dict[str, Any]:
    """As the 2.7.5 farmer: the sixth field carries the token as text, the signature covers the classic five."""
    payload = PutFarmerPayload(
        launcher_id,
        uint64(token),
        None if auth_sk is None else auth_sk.get_g1(),
        payout_instructions,
        None if suggested_difficulty is None else uint64(suggested_difficulty),
        authentication_token_v2=str(token),
    )
    classic = ClassicPutFarmerPayload(
        payload.launcher_id,
        payload.authentication_token,
        payload.authentication_public_key,
        payload.payout_instructions,
        payload.suggested_difficulty,
    )
    message = payload.get_hash() if sign_six_fields else classic.get_hash()
    return PutFarmerRequest(payload, AugSchemeMPL.sign(owner_sk, message)).to_json_dict()


def authenticated_params(
    method_name: str, launcher_id: bytes32, target_puzzle_hash: bytes32, auth_sk: PrivateKey, token: int
) -> dict[str, Any]:
    """GET /farmer's parameters as the farmer sends them (GET /login uses the same three, without the v2 token)."""
    message = AuthenticationPayloadV1(method_name, launcher_id, target_puzzle_hash, uint64(token)).get_hash()
    request = GetFarmerRequestV1(
        authentication_token=uint64(token),
        launcher_id=launcher_id,
        signature=AugSchemeMPL.sign(auth_sk, message),
        authentication_token_v2="",
    )
    params = request.to_json_dict()
    if method_name == "get_login":
        del params["authentication_token_v2"]
    return params


def partial_body(
    launcher_id: bytes32,
    token: int,
    found: FoundProof,
    sp: SignagePointInfo,
    auth_sk: PrivateKey,
    *,
    sp_hash: bytes32 | None = None,
    harvester_id: bytes32 = HARVESTER_ID,
) -> dict[str, Any]:
    payload = PostPartialPayload(
        launcher_id,
        uint64(token),
        found.proof_of_space,
        sp.sp_hash if sp_hash is None else sp_hash,
        sp.end_of_sub_slot,
        harvester_id,
    )
    message = payload.get_hash()
    # The harvester and the farmer together sign with the plot key; the farmer adds the authentication key.
    signature = AugSchemeMPL.aggregate([found.plot.sign(message), AugSchemeMPL.sign(auth_sk, message)])
    return PostPartialRequest(payload, signature, authentication_token_v2=str(token)).to_json_dict()


async def fresh_proofs(
    world: World, plots: list[PoolPlot], wanted: int = 1
) -> tuple[SignagePointInfo, list[FoundProof]]:
    """A newly injected signage point for which the plots hold at least ``wanted`` proofs."""
    for _ in range(60):
        sp = await world.new_signage_point()
        found = world.proofs_for_signage_point(plots, sp)
        if len(found) >= wanted:
            return sp, found
    raise AssertionError("no proofs found for 60 signage points")


def strip_0x(value: Any) -> Any:
    """The same JSON with every ``0x`` hex string written without the prefix."""
    if isinstance(value, dict):
        return {key: strip_0x(item) for key, item in value.items()}
    if isinstance(value, list):
        return [strip_0x(item) for item in value]
    if isinstance(value, str) and value.startswith("0x"):
        return value[2:]
    return value


async def buried_plotnft(world: World, **kwargs: Any) -> PlotNFTInfo:
    """A PlotNFT whose launcher spend is buried deep enough for the test pools to trust."""
    plotnft = await world.create_plotnft(relative_lock_height=RELATIVE_LOCK_HEIGHT, **kwargs)
    await world.farm_blocks(THRESHOLD + 1)
    return plotnft


# PlotNFTs with plots, made once per chain and name: modules that only need *some* farmer's keys and plots share them
# (each registers the farmer in its own pool) instead of each farming PlotNFTs and creating plots of their own.
_SHARED_PLOTNFTS: dict[tuple[int, str], tuple[PlotNFTInfo, list[PoolPlot]]] = {}


@dataclass
class SharedFarmer:
    plotnft: PlotNFTInfo
    plots: list[PoolPlot]
    auth_sk: PrivateKey

    @property
    def launcher_id(self) -> bytes32:
        return self.plotnft.launcher_id


async def shared_plotnft(world: World, name: str) -> tuple[PlotNFTInfo, list[PoolPlot]]:
    """The PlotNFT ``name`` with one plot, farming to the world's pool, shared by every module that asks for that
    name (none may change its state on chain)."""
    key = (id(world), name)
    if key not in _SHARED_PLOTNFTS:
        plotnft = await buried_plotnft(world, pool_url="http://127.0.0.1:1", fresh_launcher=False)
        _SHARED_PLOTNFTS[key] = (plotnft, await world.create_pool_plots(plotnft.p2_singleton_puzzle_hash, 1))
    return _SHARED_PLOTNFTS[key]


async def shared_farmer(world: World, pool: PoolUnderTest, name: str) -> SharedFarmer:
    """The farmer ``name`` (a PlotNFT with one plot, shared by every module that asks for that name), registered in
    ``pool`` with an authentication key of its own."""
    plotnft, plots = await shared_plotnft(world, name)
    auth_sk = AugSchemeMPL.key_gen(std_hash(name.encode()))
    payout = encode_puzzle_hash(bytes32(std_hash(name.encode() + b" payout")), "txch")
    reply = await pool.send("POST", "/farmer", post_farmer_body(plotnft, auth_sk, pool.token, payout))
    assert "welcome_message" in reply, reply
    return SharedFarmer(plotnft, plots, auth_sk)
