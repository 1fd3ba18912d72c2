"""Requests of Pool Protocol v2 built and signed as chia 2.7.5's farmer builds them for a PlotNFT v2
(chia/farmer/farmer.py, farmer_api.py): GET /v2/auth signed by the synthetic key's unhardened child 12381 over
timestamp, launcher id and target puzzle hash; POST /v2/farmer signed by the same key over PostFarmerPayload (token 0,
the synthetic key as the authentication key); GET and PUT /v2/farmer carrying the token only; a partial signed by the
plot key and the synthetic key, its token in ``authentication_token_v2``."""

from __future__ import annotations

from typing import Any

from pool.chia_adapter import (
    AugSchemeMPL,
    GetAuthRequest,
    GetFarmerRequestV2,
    PostFarmerPayload,
    PostFarmerRequest,
    PostPartialPayload,
    PostPartialRequest,
    PrivateKey,
    bytes32,
    encode_puzzle_hash,
    std_hash,
    uint64,
)
from pool.devnet.wallets import PlotNFTV2Info
from pool.protocol.v2 import auth_message
from tests.http.farmer_requests import HARVESTER_ID, PoolUnderTest

PAYOUT = encode_puzzle_hash(bytes32(std_hash(b"v2 farmer payout")), "txch")


def auth_params(plotnft: PlotNFTV2Info, pool: PoolUnderTest, *, timestamp: int | None = None) -> dict[str, Any]:
    moment = pool.ctx.now() if timestamp is None else timestamp
    message = auth_message(moment, plotnft.launcher_id, pool.target_puzzle_hash)
    signature = AugSchemeMPL.sign(plotnft.auth_secret_key, message)
    return GetAuthRequest(plotnft.launcher_id, uint64(moment), signature).to_json_dict()


def post_body(
    plotnft: PlotNFTV2Info,
    *,
    key: PrivateKey | None = None,
    signer: PrivateKey | None = None,
    launcher_id: bytes32 | None = None,
) -> Any:
    """As the farmer: token 0, its synthetic key, signed by that key's v2 child (``key``/``signer``/``launcher_id``
    to forge)."""
    payload = PostFarmerPayload(
        launcher_id or plotnft.launcher_id, uint64(0), (key or plotnft.synthetic_secret_key).get_g1(), PAYOUT, None
    )
    signature = AugSchemeMPL.sign(signer or plotnft.auth_secret_key, payload.get_hash())
    return PostFarmerRequest(payload, signature).to_json_dict()


def farmer_params(launcher_id: bytes32, token: str) -> dict[str, Any]:
    return GetFarmerRequestV2(
        authentication_token=uint64(0), launcher_id=launcher_id, authentication_token_v2=token
    ).to_json_dict()


def v2_partial_body(plotnft: PlotNFTV2Info, pool: PoolUnderTest, token: str, found: Any, sp: Any) -> Any:
    payload = PostPartialPayload(
        plotnft.launcher_id, uint64(pool.token), found.proof_of_space, sp.sp_hash, sp.end_of_sub_slot, HARVESTER_ID
    )
    message = payload.get_hash()
    signature = AugSchemeMPL.aggregate(
        [found.plot.sign(message), AugSchemeMPL.sign(plotnft.synthetic_secret_key, message)]
    )
    return PostPartialRequest(payload, signature, authentication_token_v2=token).to_json_dict()


async def token_for(pool: PoolUnderTest, plotnft: PlotNFTV2Info) -> str:
    reply = await pool.get("/v2/auth", auth_params(plotnft, pool))
    assert "authentication_token" in reply, reply
    return str(reply["authentication_token"])
