"""What anonymous POST /farmer, PUT /farmer and GET /farmer requests cost the pool, on the session's chain with real
PlotNFTs, real keys and real signatures: the node calls they make, the singleton walks and the signature checks.

The pool trusts 127.0.0.1 as a proxy, so each test client is told apart by its X-Forwarded-For address, and runs with
small budgets (refilled about never) so that few requests show each bound. The node calls are counted as the pool's
RPC client makes them (its observer, which also feeds GET /metrics). The tests run in file order and build on each
other: PlotNFTs registered by one are known in the next.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from pool.chain.node_rpc import RpcFullNode
from pool.chain.singleton import follow_singleton, read_launcher
from pool.chia_adapter import (
    AugSchemeMPL,
    PoolErrorCode,
    PoolSingletonState,
    PrivateKey,
    bytes32,
    encode_puzzle_hash,
    std_hash,
    uint32,
)
from pool.chia_adapter.simulation import create_pool_state
from pool.config import RateLimit
from pool.devnet.world import PlotNFTInfo, World
from pool.http.keys import COOLDOWNS, FARMERS, RATE_LIMITS
from pool.protocol.farmers import REFUSAL_MEMORY_SECONDS, FarmerChecks
from tests.http.farmer_requests import (
    RELATIVE_LOCK_HEIGHT,
    THRESHOLD,
    PoolUnderTest,
    authenticated_params,
    buried_plotnft,
    post_farmer_body,
    put_farmer_body,
    shared_plotnft,
)

NEVER = 0.001  # refills: one token in 1 000 s
LOOKUPS = 4  # chain reads before a verified signature, per address
FAILED_PER_LAUNCHER = 3  # failed signatures per launcher and address
FAILED_PER_ADDRESS = 5  # failed signatures per address
REFUSED = 4  # refused requests per address before a cool-down (in the test of cool-downs)
PAYOUT = encode_puzzle_hash(bytes32(std_hash(b"request costs payout")), "txch")
ATTACKER = AugSchemeMPL.key_gen(std_hash(b"request costs attacker"))


def key(name: str) -> PrivateKey:
    return AugSchemeMPL.key_gen(std_hash(name.encode()))


class NodeCalls(Counter[str]):
    """The pool's full node RPCs by name, as its client makes them."""

    def __call__(self, call: str, seconds: float, answered: bool) -> None:
        self[call] += 1

    def since(self, before: Counter[str]) -> dict[str, int]:
        return {call: count for call, count in (self - before).items() if count}


@dataclasses.dataclass
class Pool:
    under_test: PoolUnderTest
    calls: NodeCalls

    @property
    def farmers(self) -> FarmerChecks:
        return self.under_test.app[FARMERS]

    @property
    def token(self) -> int:
        return self.under_test.token

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

    def cost(self) -> tuple[Counter[str], int, int]:
        """Node calls, walks started and signatures verified so far."""
        return Counter(self.calls), self.farmers.walks.started, self.farmers.signatures.verified


def forged_registration(pool: Pool, plotnft: PlotNFTInfo) -> dict[str, Any]:
    """POST /farmer for a real PlotNFT, signed by someone else than its owner."""
    return post_farmer_body(plotnft, key("auth"), pool.token, PAYOUT, signer=ATTACKER)


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
            "launcher_lookups": RateLimit(NEVER, LOOKUPS),
            "singleton_walks": RateLimit(NEVER, 1),
            "failed_signatures": RateLimit(NEVER, FAILED_PER_LAUNCHER),
            "failed_signatures_per_address": RateLimit(NEVER, FAILED_PER_ADDRESS),
        },
    )
    node = started.ctx.node
    assert isinstance(node, RpcFullNode)
    calls = NodeCalls()
    node.observer = calls
    yield Pool(started, calls)
    await started.close()


@pytest_asyncio.fixture(scope="module")
async def shared(world: World) -> list[PlotNFTInfo]:
    """Two PlotNFTs farming to the pool, shared with other modules (each registers them in a pool of its own)."""
    return [(await shared_plotnft(world, name))[0] for name in ("farmer one", "farmer two")]


@pytest_asyncio.fixture(scope="module")
async def own(world: World) -> PlotNFTInfo:
    """A PlotNFT of this module's own: it leaves the pool and comes back with another owner key."""
    return await buried_plotnft(world, pool_url="http://127.0.0.1:1", fresh_launcher=False)


async def test_anonymous_registrations_with_rotating_launchers_never_walk(
    pool: Pool, shared: list[PlotNFTInfo], own: PlotNFTInfo
) -> None:
    """Real launcher ids, a different one each time, signed by someone else: one launcher read each (kept), one
    look-up of the PlotNFT's coins per request (has its owner key changed?), a signature check, and no walk. Then
    the address's budgets run out, whichever launcher id comes next: its chain reads (the fifth request's signature
    is checked, and fails, but nothing is looked up), then its failed signatures (nothing is checked any more)."""
    launchers = [*shared, own]
    calls, walks, verified = pool.cost()
    replies = [
        error(await pool.send("POST", forged_registration(pool, plotnft), "192.0.2.1"))
        for _ in range(3)
        for plotnft in launchers
    ]
    assert LOOKUPS + 1 == FAILED_PER_ADDRESS
    assert replies[:LOOKUPS] == [(PoolErrorCode.INVALID_SIGNATURE, "invalid signature: not the PlotNFT owner's")] * 4
    assert replies[LOOKUPS][0] is PoolErrorCode.REQUEST_FAILED and "PlotNFT look-ups" in replies[LOOKUPS][1]
    assert all(code is PoolErrorCode.INVALID_SIGNATURE for code, _ in replies[FAILED_PER_ADDRESS:])
    assert all(
        "failed signatures from 192.0.2.1; not checked" in message for _, message in replies[FAILED_PER_ADDRESS:]
    )
    spent = pool.calls.since(calls)
    print(f"{len(replies)} anonymous POST /farmer: node calls {spent}")
    # Three launchers read (a coin and its spend each), each checked request looked at one puzzle hash's coins.
    assert spent == {
        "get_blockchain_state": len(launchers),
        "get_coin_record_by_name": len(launchers),
        "get_puzzle_and_solution": len(launchers),
        "get_coin_records_by_puzzle_hashes": LOOKUPS,
    }
    _, walks_after, verified_after = pool.cost()
    assert walks_after == walks and verified_after == verified + FAILED_PER_ADDRESS

    # A launcher id the pool never read: refused from memory too (the budget is the address's, not the launcher's).
    calls = Counter(pool.calls)
    unknown = dataclasses.replace(shared[0], launcher_id=bytes32(std_hash(b"no such launcher")))
    reply = await pool.send("POST", forged_registration(pool, unknown), "192.0.2.1")
    assert "not checked" in error(reply)[1] and not pool.calls.since(calls)


async def test_the_owner_registers_from_another_address_with_one_walk(pool: Pool, shared: list[PlotNFTInfo]) -> None:
    calls, walks, _ = pool.cost()
    body = post_farmer_body(shared[1], key("farmer two"), pool.token, PAYOUT)
    assert "welcome_message" in await pool.send("POST", body, "198.51.100.1")
    assert pool.farmers.walks.started == walks + 1
    # The launcher was read already: the walk is all the node was asked for (it starts from the launcher's child).
    assert "get_coin_records_by_puzzle_hashes" not in pool.calls.since(calls)


async def test_refused_walks_are_counted_per_address_and_walks_at_once_are_bounded(
    world: World, pool: Pool, shared: list[PlotNFTInfo], own: PlotNFTInfo
) -> None:
    # The owner's signed request for a PlotNFT that left the pool: walked (the signature is the owner's), refused.
    await world.leave_pool(own, complete=True)
    await world.farm_blocks(THRESHOLD + 1)
    _, walks, _ = pool.cost()
    left = await pool.send("POST", post_farmer_body(own, key("own"), pool.token, PAYOUT), "198.51.100.2")
    assert error(left) == (PoolErrorCode.INVALID_SINGLETON, error(left)[1])
    assert "does not farm to this pool" in error(left)[1]
    assert pool.farmers.walks.started == walks + 1
    # The same address's next request that needs a walk, whatever its launcher: refused before walking.
    body = post_farmer_body(shared[0], key("farmer one"), pool.token, PAYOUT)
    code, message = error(await pool.send("POST", body, "198.51.100.2"))
    assert code is PoolErrorCode.REQUEST_FAILED and "refused PlotNFT walks" in message
    assert pool.farmers.walks.started == walks + 1

    # Walks at once: none allowed now. Answered busy at once, nothing walked, nothing used up of the budget.
    pool.farmers.walks.limit = 0
    try:
        code, message = error(await pool.send("POST", body, "198.51.100.3"))
        assert code is PoolErrorCode.SERVER_EXCEPTION and "busy" in message
        assert pool.farmers.walks.started == walks + 1
    finally:
        pool.farmers.walks.limit = pool.under_test.ctx.config.limits.concurrent_walks
    assert "welcome_message" in await pool.send("POST", body, "198.51.100.3")  # the one walk it may have
    assert pool.farmers.walks.started == walks + 2


async def test_an_owner_key_changed_on_chain_is_found_without_a_walk(
    world: World, pool: Pool, own: PlotNFTInfo
) -> None:
    """The PlotNFT (self-pooling now) travels back into the pool under a new owner key. A request signed by the new
    key is found to be the owner's by following the PlotNFT's states (one look-up each, one spend per travel), and
    only then walked; the old key's signature checks out against the first state, but not the buried one."""
    node = pool.under_test.ctx.node
    genesis = pool.under_test.ctx.constants.GENESIS_CHALLENGE
    view = await follow_singleton(
        node,
        own.launcher_id,
        peak_height=world.peak_height,
        confirmation_security_threshold=0,
        genesis_challenge=genesis,
    )
    assert view.state.state == PoolSingletonState.SELF_POOLING.value
    launcher = await read_launcher(node, own.launcher_id, world.peak_height)
    new_owner = key("the PlotNFT's new owner")
    back = create_pool_state(
        PoolSingletonState.FARMING_TO_POOL,
        pool.under_test.target_puzzle_hash,
        new_owner.get_g1(),
        "http://127.0.0.1:1",
        uint32(RELATIVE_LOCK_HEIGHT),
    )
    await world.lying_travel(  # honest here: from the waiting room a travel goes where it announces
        own,
        last_spend=view.tip,
        launcher=launcher.tip.coin,
        current=view.state,
        announced=back,
        delay_time=view.delay_time,
        delay_puzzle_hash=view.delay_puzzle_hash,
    )
    await world.farm_blocks(THRESHOLD + 1)
    pool.under_test.clock.offset += REFUSAL_MEMORY_SECONDS + 1  # the refusal of the last test is forgotten

    calls, walks, _ = pool.cost()
    stale = await pool.send("POST", post_farmer_body(own, key("own"), pool.token, PAYOUT), "198.51.100.4")
    code, message = error(stale)
    assert code is PoolErrorCode.INVALID_SIGNATURE and "buried" in message
    assert pool.farmers.walks.started == walks + 1

    calls = Counter(pool.calls)
    body = post_farmer_body(own, key("own"), pool.token, PAYOUT, signer=new_owner)
    assert "welcome_message" in await pool.send("POST", body, "198.51.100.5")
    assert pool.farmers.walks.started == walks + 2
    spent = pool.calls.since(calls)
    print(f"registration under a changed owner key: node calls {spent}")
    # Three travels (leaving, self-pooling, back): one spend read each, one look-up per state, before the walk.
    assert spent["get_coin_records_by_puzzle_hashes"] == 4
    farmer = await pool.under_test.ctx.store.get_farmer(own.launcher_id)
    assert farmer is not None and farmer.singleton_tip_state.owner_pubkey == new_owner.get_g1()


async def test_failed_signatures_are_counted_per_launcher_and_address(pool: Pool, shared: list[PlotNFTInfo]) -> None:
    registered = shared[1]  # by the second test, with key("farmer two")
    honest_key = key("farmer two")
    _, _, verified = pool.cost()
    forged = [await pool.get_farmer(registered.launcher_id, ATTACKER, "203.0.113.1") for _ in range(5)]
    codes_messages = [error(reply) for reply in forged]
    assert [code for code, _ in codes_messages] == [PoolErrorCode.INVALID_SIGNATURE] * 5
    assert [("not checked" in message) for _, message in codes_messages] == [False] * 3 + [True] * 2
    assert pool.cost()[2] == verified + FAILED_PER_LAUNCHER  # the last two cost no signature check

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
    pool: Pool, shared: list[PlotNFTInfo], own: PlotNFTInfo
) -> None:
    launchers = [plotnft.launcher_id for plotnft in (*shared, own)]  # all registered by now
    _, _, verified = pool.cost()
    replies = [await pool.get_farmer(launchers[n % 3], ATTACKER, "203.0.113.2") for n in range(7)]
    assert [("not checked" in error(reply)[1]) for reply in replies] == [False] * FAILED_PER_ADDRESS + [True] * 2
    assert pool.cost()[2] == verified + FAILED_PER_ADDRESS


async def test_a_partial_from_an_address_whose_budget_is_spent_is_refused_before_its_decoding(
    pool: Pool, shared: list[PlotNFTInfo]
) -> None:
    """The address of the test above spent its failed signatures: its partials are refused on the launcher id the
    body names, before the rest (the proof, the signature) is decoded."""
    undecodable = {
        "payload": {"launcher_id": "0x" + shared[0].launcher_id.hex(), "proof_of_space": "not a proof"},
        "aggregate_signature": "0x00",
    }

    async def post_partial(address: str) -> tuple[PoolErrorCode, str]:
        response = await pool.under_test.client.post("/partial", json=undecodable, headers={"X-Forwarded-For": address})
        assert response.status == 200, await response.text()
        return error(dict(await response.json()))

    code, message = await post_partial("203.0.113.2")
    assert code is PoolErrorCode.INVALID_SIGNATURE and "not checked" in message
    assert (await post_partial("198.51.100.7"))[0] is PoolErrorCode.REQUEST_FAILED  # elsewhere: decoded, malformed


async def test_an_address_whose_signatures_keep_failing_is_cooled_down(pool: Pool, shared: list[PlotNFTInfo]) -> None:
    """Forged GET /farmer from one client of the trusted proxy: once its budget of refused requests is spent (made
    small here), its requests are refused by the first middleware, before any look-up or check; another client's
    are still checked."""
    limits, cooldowns = pool.under_test.app[RATE_LIMITS], pool.under_test.app[COOLDOWNS]
    scaled = limits.refused_requests.limit
    limits.refused_requests.limit = RateLimit(NEVER, REFUSED)
    try:
        _, _, verified = pool.cost()
        replies = [error(await pool.get_farmer(shared[1].launcher_id, ATTACKER, "203.0.113.9")) for _ in range(6)]
        assert [code for code, _ in replies[: REFUSED + 1]] == [PoolErrorCode.INVALID_SIGNATURE] * (REFUSED + 1)
        assert all(
            code is PoolErrorCode.REQUEST_FAILED and "too many requests from 203.0.113.9 were refused" in message
            for code, message in replies[REFUSED + 1 :]
        )
        assert cooldowns.remaining("203.0.113.9") > 0
        assert pool.cost()[2] == verified + FAILED_PER_LAUNCHER  # the rest were refused unchecked
        # Another client is not cooled down: its forgery is checked and refused as such.
        reply = error(await pool.get_farmer(shared[1].launcher_id, ATTACKER, "203.0.113.10"))
        assert reply == (PoolErrorCode.INVALID_SIGNATURE, reply[1]) and "not checked" not in reply[1]
        assert cooldowns.remaining("203.0.113.10") == 0.0
    finally:
        limits.refused_requests.limit = scaled
