"""What anonymous requests for farmers cost the pool, on the session's chain with real PlotNFTs, real keys and real
signatures: the signature checks they make.

The pool trusts 127.0.0.1 as a proxy, so each test client is told apart by its X-Forwarded-For address, and runs with
small budgets (refilled about never) so that few requests show each bound. The tests run in file order.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from pool.chia_adapter import AugSchemeMPL, PoolErrorCode, PrivateKey, bytes32, encode_puzzle_hash, std_hash
from pool.config import RateLimit
from pool.devnet.world import PlotNFTInfo, World
from pool.http.keys import FARMERS
from pool.protocol.farmers import FarmerChecks
from tests.http.farmer_requests import (
    PoolUnderTest,
    authenticated_params,
    post_farmer_body,
    put_farmer_body,
    shared_plotnft,
)

NEVER = 0.001  # refills: one token in 1 000 s
FAILED_PER_LAUNCHER = 3  # failed signatures per launcher and address
FAILED_PER_ADDRESS = 5  # failed signatures per address
PAYOUT = encode_puzzle_hash(bytes32(std_hash(b"request costs payout")), "txch")
ATTACKER = AugSchemeMPL.key_gen(std_hash(b"request costs attacker"))


def key(name: str) -> PrivateKey:
    return AugSchemeMPL.key_gen(std_hash(name.encode()))


@dataclasses.dataclass
class Pool:
    under_test: PoolUnderTest

    @property
    def farmers(self) -> FarmerChecks:
        return self.under_test.app[FARMERS]

    @property
    def token(self) -> int:
        return self.under_test.token

    @property
    def verified(self) -> int:
        """Signatures checked so far."""
        return self.farmers.signatures.verified

    async def send(self, method: str, body: dict[str, Any], address: str) -> dict[str, Any]:
        response = await self.under_test.client.request(
            method, "/farmer", json=body, headers={"X-Forwarded-For": address}
        )
        assert response.status == 200, await response.text()
        return dict(await response.json())

    async def get_farmer(self, launcher_id: bytes32, auth_sk: PrivateKey, address: str) -> dict[str, Any]:
        target = self.under_test.target_puzzle_hash
        params = authenticated_params("get_farmer", launcher_id, target, auth_sk, self.token)
        response = await self.under_test.client.get(
            "/farmer", params={name: str(value) for name, value in params.items()}, headers={"X-Forwarded-For": address}
        )
        assert response.status == 200, await response.text()
        return dict(await response.json())


def error(reply: dict[str, Any]) -> tuple[PoolErrorCode, str]:
    assert set(reply) == {"error_code", "error_message"}, reply
    return PoolErrorCode(reply["error_code"]), reply["error_message"]


@pytest_asyncio.fixture(scope="module")
async def pool(world: World, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pool]:
    started = await PoolUnderTest.start(
        world,
        tmp_path_factory.mktemp("costs") / "pool.sqlite",
        limits={
            "trusted_proxies": (ipaddress.ip_network("127.0.0.1"),),
            "failed_signatures": RateLimit(NEVER, FAILED_PER_LAUNCHER),
            "failed_signatures_per_address": RateLimit(NEVER, FAILED_PER_ADDRESS),
        },
    )
    yield Pool(started)
    await started.close()


@pytest_asyncio.fixture(scope="module")
async def shared(world: World, pool: Pool) -> list[PlotNFTInfo]:
    """Two PlotNFTs farming to the pool, shared with other modules, registered here with keys of their own."""
    plotnfts = [(await shared_plotnft(world, name))[0] for name in ("farmer one", "farmer two")]
    for plotnft, name in zip(plotnfts, ("farmer one", "farmer two"), strict=True):
        reply = await pool.send("POST", post_farmer_body(plotnft, key(name), pool.token, PAYOUT), "198.51.100.1")
        assert "welcome_message" in reply, reply
    return plotnfts


async def test_failed_signatures_are_counted_per_launcher_and_address(pool: Pool, shared: list[PlotNFTInfo]) -> None:
    registered, honest_key = shared[1], key("farmer two")
    verified = pool.verified
    forged = [await pool.get_farmer(registered.launcher_id, ATTACKER, "203.0.113.1") for _ in range(5)]
    codes_messages = [error(reply) for reply in forged]
    assert [code for code, _ in codes_messages] == [PoolErrorCode.INVALID_SIGNATURE] * 5
    assert [("not checked" in message) for _, message in codes_messages] == [False] * 3 + [True] * 2
    assert pool.verified == verified + FAILED_PER_LAUNCHER  # the last two cost no signature check

    # Nobody elsewhere is locked out: the farmer's own requests verify.
    assert "current_difficulty" in await pool.get_farmer(registered.launcher_id, honest_key, "198.51.100.1")
    # From the forger's address the farmer's own request is refused unchecked too (an address shared with a forger
    # shares its budget) until its owner signs from there: PUT /farmer (its budget is the owner key's, counted
    # apart, and chia's farmer sends it after INVALID_SIGNATURE), then its requests from there verify again.
    refused = await pool.get_farmer(registered.launcher_id, honest_key, "203.0.113.1")
    assert "not checked" in error(refused)[1]
    put = put_farmer_body(registered.launcher_id, registered.owner_secret_key, pool.token, auth_sk=honest_key)
    assert (await pool.send("PUT", put, "203.0.113.1"))["authentication_public_key"] is False
    assert "current_difficulty" in await pool.get_farmer(registered.launcher_id, honest_key, "203.0.113.1")


async def test_failed_signatures_are_counted_per_address_whatever_the_launcher(
    pool: Pool, shared: list[PlotNFTInfo]
) -> None:
    launchers = [plotnft.launcher_id for plotnft in shared]
    verified = pool.verified
    replies = [await pool.get_farmer(launchers[n % 2], ATTACKER, "203.0.113.2") for n in range(7)]
    assert [("not checked" in error(reply)[1]) for reply in replies] == [False] * FAILED_PER_ADDRESS + [True] * 2
    assert pool.verified == verified + FAILED_PER_ADDRESS
