"""Rate limits on a running pool on the session's chain, with real farmers' real partials.

One farmer floods the pool with its own (valid, signed) partial, and an attacker floods it with partials forged for
another farmer's launcher id from an address of its own; meanwhile the other farmer's partials keep being accepted,
not much slower than before the flood. The pool runs with the default limits, behind a "proxy" (127.0.0.1 is
trusted, so each client is told apart by its X-Forwarded-For address).
"""

from __future__ import annotations

import asyncio
import ipaddress
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from pool.chia_adapter import AugSchemeMPL, PoolErrorCode, bytes32, std_hash
from pool.config import LimitsConfig, RateLimit
from pool.devnet.pool_config import OPERATOR_HEADERS
from pool.devnet.world import World
from pool.protocol.partials import proof_identity
from pool.protocol.rate_limits import TokenBuckets
from tests.http.farmer_requests import PoolUnderTest, SharedFarmer, partial_body, shared_farmer
from tests.http.test_http_partial import fresh_proofs

DEFAULTS = LimitsConfig()
FLOODER = "203.0.113.1"  # the farmer that floods with its own partial
ATTACKER = "203.0.113.2"  # someone without keys, flooding another farmer's launcher id
HONEST = "198.51.100.7"
LATER = "198.51.100.8"  # the first farmer after its flood, from an address the flood did not use up
CONCURRENT = 10  # requests of each flood in flight at once


@pytest_asyncio.fixture(scope="module")
async def pool(world: World, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PoolUnderTest]:
    started = await PoolUnderTest.start(
        world,
        tmp_path_factory.mktemp("limits") / "pool.sqlite",
        partials={"signage_point_wait": 0.5},
        # The operator's defaults (the devnet's configuration scales them up for its fast chain).
        limits={
            "per_address": DEFAULTS.per_address,
            "per_launcher": DEFAULTS.per_launcher,
            "signage_point_lookups": DEFAULTS.signage_point_lookups,
            "trusted_proxies": (ipaddress.ip_network("127.0.0.1"),),
        },
    )
    yield started
    await started.close()


@pytest_asyncio.fixture(scope="module")
async def flooder(world: World, pool: PoolUnderTest) -> SharedFarmer:
    return await shared_farmer(world, pool, "farmer one")


@pytest_asyncio.fixture(scope="module")
async def honest(world: World, pool: PoolUnderTest, flooder: SharedFarmer) -> SharedFarmer:
    return await shared_farmer(world, pool, "farmer two")


async def post_partial(pool: PoolUnderTest, body: dict[str, Any], address: str) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    response = await pool.client.post("/partial", json=body, headers={"X-Forwarded-For": address})
    assert response.status == 200, await response.text()
    return dict(await response.json()), time.monotonic() - started


def outcome(reply: dict[str, Any]) -> str:
    if "new_difficulty" in reply:
        return "accepted"
    if "rate limit" in reply["error_message"]:
        return "rate limited"
    return PoolErrorCode(reply["error_code"]).name


async def honest_partial(world: World, pool: PoolUnderTest, farmer: SharedFarmer) -> tuple[str, float]:
    sp, found = await fresh_proofs(world, farmer.plots)
    reply, seconds = await post_partial(
        pool, partial_body(farmer.launcher_id, pool.token, found[0], sp, farmer.auth_sk), HONEST
    )
    return outcome(reply), seconds


@dataclass
class Flood:
    """``body`` sent from ``address``, CONCURRENT at a time, until told to stop."""

    body: dict[str, Any]
    address: str
    outcomes: Counter[str] = field(default_factory=Counter)
    limited: asyncio.Event = field(default_factory=asyncio.Event)  # set once the pool refused it by a limit

    async def run(self, pool: PoolUnderTest, until: asyncio.Event) -> None:
        while not until.is_set() and self.outcomes.total() < 20_000:
            replies = await asyncio.gather(*(post_partial(pool, self.body, self.address) for _ in range(CONCURRENT)))
            self.outcomes.update(outcome(reply) for reply, _ in replies)
            if self.outcomes["rate limited"]:
                self.limited.set()


async def refusals_recorded(pool: PoolUnderTest, launcher_id: bytes32) -> int:
    return sum(c.count for c in await pool.ctx.store.partial_counts(0, launcher_id) if c.outcome != "accepted")


async def test_a_flood_from_one_launcher_and_one_address_leaves_other_farmers_alone(
    world: World, pool: PoolUnderTest, flooder: SharedFarmer, honest: SharedFarmer
) -> None:
    normal = [await honest_partial(world, pool, honest) for _ in range(3)]
    assert [result for result, _ in normal] == ["accepted"] * 3

    sp, found = await fresh_proofs(world, flooder.plots)
    own = partial_body(flooder.launcher_id, pool.token, found[0], sp, flooder.auth_sk)
    assert outcome((await post_partial(pool, own, FLOODER))[0]) == "accepted"
    # Forged for the honest farmer's launcher id: a real proof, signed without the honest farmer's key.
    forged = partial_body(honest.launcher_id, pool.token, found[0], sp, AugSchemeMPL.key_gen(std_hash(b"attacker")))
    recorded_before = await refusals_recorded(pool, flooder.launcher_id)
    resent_before = pool.ctx.stats.partials_resent

    done = asyncio.Event()
    started = time.monotonic()
    floods = [Flood(own, FLOODER), Flood(forged, ATTACKER)]
    running = asyncio.gather(*(one.run(pool, done) for one in floods))
    try:
        for one in floods:  # both floods are being refused by a limit, and go on ...
            await asyncio.wait_for(one.limited.wait(), 120)
        during = [await honest_partial(world, pool, honest) for _ in range(3)]  # ... while the honest farmer sends
    finally:
        done.set()
        await running
    elapsed = time.monotonic() - started
    by_flooder, by_attacker = (one.outcomes for one in floods)
    print(
        f"flood of {elapsed:.1f} s: flooder {dict(by_flooder)}, attacker {dict(by_attacker)}; honest latency "
        f"before {[round(s, 3) for _, s in normal]}, during {[round(s, 3) for _, s in during]}"
    )

    # The honest farmer: every partial accepted (the forged ones never used up its allowance), and not much slower.
    assert [result for result, _ in during] == ["accepted"] * 3
    # Generous, and by the medians (one partial may meet a garbage collection): the floods keep 20 requests in flight
    # (each refused quickly, but in the same process), and some get through at the limits' rates. Starved, the honest
    # farmer would wait for seconds, past the partial time limit.
    assert statistics.median(s for _, s in during) <= 50 * statistics.median(s for _, s in normal)

    # The flooder: refused by its launcher's limit once its burst is spent; what got through is its own proof sent
    # again, answered as the first copy was (a resend is not a farmer's fault) and credited once, or, once its
    # signage point is older than the partial time limit (a slow machine makes the flood last that long), too late.
    allowed = DEFAULTS.per_launcher.burst + DEFAULTS.per_launcher.rate * elapsed
    assert set(by_flooder) <= {"rate limited", "accepted", "TOO_LATE"}
    assert by_flooder["rate limited"] > 0 and by_flooder["accepted"] <= allowed
    assert pool.ctx.stats.partials_resent == resent_before + by_flooder["accepted"]
    stored = await pool.ctx.store.recent_partials(flooder.launcher_id, since=0)
    assert [p.proof_hash for p in stored].count(proof_identity(sp.sp_hash, found[0].proof_of_space)) == 1
    # Refused before the signature and the store: no refusal recorded for the flooder.
    assert await refusals_recorded(pool, flooder.launcher_id) == recorded_before

    # The attacker: refused by its address's limit once its burst is spent; before that, by the signature check.
    assert set(by_attacker) <= {"rate limited", "INVALID_SIGNATURE"}
    assert by_attacker["rate limited"] > 0
    assert by_attacker["INVALID_SIGNATURE"] <= DEFAULTS.per_address.burst + DEFAULTS.per_address.rate * elapsed

    # Operators see the refusals per limit (asked from an address of its own: the attacker's is refused).
    metrics = await (
        await pool.client.get("/metrics", headers={"X-Forwarded-For": "192.0.2.99", **OPERATOR_HEADERS})
    ).text()
    refused = {
        sample.labels["limit"]: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "pool_rate_limited_total"
    }
    # The flooder's address runs out too once the flood outlasts its burst (every request spends from its address
    # first), so its refusals are split between the two limits.
    assert refused["per_launcher"] > 0 and refused["per_address"] >= by_attacker["rate limited"]
    assert refused["per_launcher"] + refused["per_address"] >= by_flooder["rate limited"] + by_attacker["rate limited"]

    # Every endpoint refuses a flooding address: protocol endpoints as the farmer reads them, the pages with 429.
    info = await until_refused(pool, "/pool_info", lambda response: "Retry-After" in response.headers)
    assert info.status == 200 and int(info.headers["Retry-After"]) >= 1
    assert "rate limit" in (await info.json())["error_message"]
    page = await until_refused(pool, "/", lambda response: response.status != 200)
    assert page.status == 429 and int(page.headers["Retry-After"]) >= 1
    # The JSON API's refusal is JSON too, and readable from another origin's page like its other answers.
    api = await until_refused(pool, "/api/v1/openapi.json", lambda response: response.status != 200)
    assert api.status == 429 and int(api.headers["Retry-After"]) >= 1
    assert api.headers["Access-Control-Allow-Origin"] == "*" and api.headers["Cache-Control"] == "no-store"
    assert "rate limit" in (await api.json())["error"]


async def until_refused(
    pool: PoolUnderTest, path: str, refused: Callable[[aiohttp.ClientResponse], bool]
) -> aiohttp.ClientResponse:
    """GET ``path`` from the attacker's address until the per-address limit refuses it (its bucket refills)."""
    for _ in range(DEFAULTS.per_address.burst * 2):
        response = await pool.client.get(path, headers={"X-Forwarded-For": ATTACKER})
        await response.read()
        if refused(response):
            return response
    raise AssertionError(f"GET {path} was never refused")


async def test_signage_point_lookups_are_bounded_per_farmer(
    world: World, pool: PoolUnderTest, flooder: SharedFarmer, honest: SharedFarmer
) -> None:
    """A farmer's partials for signage points the pool has not seen make it ask (and poll) its node: bounded.
    The bound is made small here (3, refilled about never) so that the test needs few partials."""
    limits = pool.rate_limits
    default_buckets = limits.signage_point_lookups
    limits.signage_point_lookups = TokenBuckets(RateLimit(rate=0.001, burst=3), max_keys=100)
    limits.launchers = TokenBuckets(DEFAULTS.per_launcher, max_keys=100)  # what the flood test used up is refilled
    try:
        cache = pool.signage_points
        sp, found = await fresh_proofs(world, flooder.plots)
        results = []
        for attempt in range(6):
            unknown = bytes32(std_hash(b"no such signage point %d" % attempt))
            body = partial_body(flooder.launcher_id, pool.token, found[0], sp, flooder.auth_sk, sp_hash=unknown)
            asked_before = cache.node_requests
            reply, _ = await post_partial(pool, body, LATER)
            results.append((outcome(reply), cache.node_requests > asked_before))
        # Three look-ups polled the node and found nothing; then refused without asking it.
        assert results == [("NOT_FOUND", True)] * 3 + [("rate limited", False)] * 3

        # A point the pool has already looked up (another farmer's partial, or the confirmation loop) costs no
        # look-up: the farmer's real partial for it is accepted even now.
        assert await cache.lookup(sp.sp_hash, sp.end_of_sub_slot) is not None
        own = partial_body(flooder.launcher_id, pool.token, found[0], sp, flooder.auth_sk)
        assert outcome((await post_partial(pool, own, LATER))[0]) == "accepted"
        # Another farmer's bound is its own.
        assert (await honest_partial(world, pool, honest))[0] == "accepted"
    finally:
        limits.signage_point_lookups = default_buckets
