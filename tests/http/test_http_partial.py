"""POST /partial with real proofs of space from real pool plots, for signage points injected into a real node.

The session's shared World (tests/conftest.py); two registered farmers (A, whose partials are tested, and B, whose
plots pay another pool contract). Every error code of the partial checks has a test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from pool.chain.interface import ChainUnavailable
from pool.chain.node_rpc import RpcFullNode
from pool.chia_adapter import (
    AugSchemeMPL,
    G2Element,
    PoolErrorCode,
    PrivateKey,
    bytes32,
    encode_puzzle_hash,
    std_hash,
)
from pool.config import RpcConfig
from pool.devnet.pool_config import OPERATOR_HEADERS
from pool.devnet.world import FoundProof, PlotNFTInfo, PoolPlot, World
from pool.http import guard
from pool.http.app import ADMISSION, PARTIALS
from pool.protocol.partials import proof_identity
from pool.protocol.rate_limits import RateLimited
from pool.protocol.signage_points import PeakCache, SignagePointCache
from pool.store.models import PartialStatus
from tests.bls_points import torsion_point_of_g2_curve
from tests.http.farmer_requests import (
    PoolUnderTest,
    authenticated_params,
    buried_plotnft,
    fresh_proofs,
    partial_body,
    post_farmer_body,
    put_farmer_body,
    strip_0x,
)

PUT_COOLDOWN = 5  # short, so that a partial after the cooldown is still in time for its signage point
SIGNAGE_POINT_WAIT = 0.6
HUGE_DIFFICULTY = 10**12  # far above what any k20 proof meets with the simulator's constants (~2e9)

T = TypeVar("T")


@dataclass
class Farmer:
    plotnft: PlotNFTInfo
    plots: list[PoolPlot]
    auth_sk: PrivateKey


def error_code(reply: dict[str, Any]) -> PoolErrorCode:
    assert set(reply) == {"error_code", "error_message"}, reply
    return PoolErrorCode(reply["error_code"])


@pytest_asyncio.fixture(scope="module")
async def pool(world: World, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PoolUnderTest]:
    store_path = tmp_path_factory.mktemp("pool") / "pool.sqlite"
    started = await PoolUnderTest.start(
        world,
        store_path,
        difficulty={"put_cooldown": PUT_COOLDOWN, "minimum": 1, "default": 1},
        partials={"signage_point_wait": SIGNAGE_POINT_WAIT, "time_limit": 25},
        limits={"trusted_proxies": (ipaddress.ip_network("127.0.0.1"),)},  # clients told apart by X-Forwarded-For
    )
    yield started
    await started.close()


async def _registered(world: World, pool: PoolUnderTest, name: bytes, plot_count: int) -> Farmer:
    # fresh_launcher=False: the same launchers every run of the same tests on the (deterministic) chain, so their
    # plots stay cached; the launchers change when the tests run before them on the shared chain change.
    plotnft = await buried_plotnft(world, pool_url="http://127.0.0.1:1", fresh_launcher=False)
    plots = await world.create_pool_plots(plotnft.p2_singleton_puzzle_hash, plot_count)
    auth_sk = AugSchemeMPL.key_gen(std_hash(name))
    payout = encode_puzzle_hash(bytes32(std_hash(name + b" payout")), "txch")
    reply = await pool.send("POST", "/farmer", post_farmer_body(plotnft, auth_sk, pool.token, payout))
    assert "welcome_message" in reply, reply
    return Farmer(plotnft, plots, auth_sk)


@pytest_asyncio.fixture(scope="module")
async def farmer(world: World, pool: PoolUnderTest) -> Farmer:
    return await _registered(world, pool, b"farmer A", 3)


@pytest_asyncio.fixture(scope="module")
async def other_farmer(world: World, pool: PoolUnderTest, farmer: Farmer) -> Farmer:
    return await _registered(world, pool, b"farmer B", 1)


async def submit(pool: PoolUnderTest, body: dict[str, Any]) -> dict[str, Any]:
    return await pool.send("POST", "/partial", body)


async def submit_from(pool: PoolUnderTest, body: dict[str, Any], address: str) -> dict[str, Any]:
    """POST /partial from ``address`` (the pool trusts the test client as its proxy)."""
    response = await pool.client.post("/partial", json=body, headers={"X-Forwarded-For": address})
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def test_valid_partial_is_recorded_pending_with_its_difficulty(
    world: World, pool: PoolUnderTest, farmer: Farmer
) -> None:
    sp, found = await fresh_proofs(world, farmer.plots)
    body = partial_body(farmer.plotnft.launcher_id, pool.token, found[0], sp, farmer.auth_sk)
    # chia 2.7.5's proof JSON carries fields older pools never saw; they must not get in the way.
    assert {"version", "plot_index", "meta_group", "strength"} <= set(body["payload"]["proof_of_space"])
    assert await submit(pool, body) == {"new_difficulty": 1}
    partials = await pool.ctx.store.recent_partials(farmer.plotnft.launcher_id, since=0)
    assert len(partials) == 1
    assert partials[0].status is PartialStatus.PENDING
    assert partials[0].difficulty == 1
    assert partials[0].sp_hash == sp.sp_hash
    assert partials[0].harvester_id == bytes32(b"\x11" * 32)


async def test_resent_proof_is_answered_as_accepted_and_credited_once(
    world: World, pool: PoolUnderTest, farmer: Farmer
) -> None:
    sp, found = await fresh_proofs(world, farmer.plots)
    launcher = farmer.plotnft.launcher_id
    before = len(await pool.ctx.store.recent_partials(launcher, since=0))
    resent_before = pool.ctx.stats.partials_resent
    body = partial_body(launcher, pool.token, found[0], sp, farmer.auth_sk)
    first = await submit(pool, body)
    assert "new_difficulty" in first
    # The same proof again, even from another harvester (a new signature over a new payload): the farmer is told what
    # the first copy told it, and the store still holds the proof once, worth the first copy's difficulty.
    again = partial_body(launcher, pool.token, found[0], sp, farmer.auth_sk, harvester_id=bytes32(b"\x22" * 32))
    assert await submit(pool, again) == first
    assert await submit(pool, body) == first
    partials = await pool.ctx.store.recent_partials(launcher, since=0)
    assert len(partials) == before + 1
    assert sum(1 for partial in partials if partial.sp_hash == sp.sp_hash) == 1
    assert pool.ctx.stats.partials_resent == resent_before + 2
    # A resend still passes every check first: a copy with a bad signature is refused as such.
    forged = dict(again, aggregate_signature=body["aggregate_signature"])
    assert error_code(await submit(pool, forged)) is PoolErrorCode.INVALID_SIGNATURE


async def test_hex_without_0x(world: World, pool: PoolUnderTest, farmer: Farmer) -> None:
    sp, found = await fresh_proofs(world, farmer.plots)
    body = strip_0x(partial_body(farmer.plotnft.launcher_id, pool.token, found[0], sp, farmer.auth_sk))
    assert not body["payload"]["sp_hash"].startswith("0x")
    assert "new_difficulty" in await submit(pool, body)


async def test_end_of_sub_slot_partial(world: World, pool: PoolUnderTest, farmer: Farmer) -> None:
    for _ in range(40):
        eos = await world.end_of_sub_slot()
        found = world.proofs_for_signage_point(farmer.plots, eos)
        if found:
            break
    else:
        raise AssertionError("no proofs for 40 ends of sub-slot")
    assert eos.end_of_sub_slot
    body = partial_body(farmer.plotnft.launcher_id, pool.token, found[0], eos, farmer.auth_sk)
    assert "new_difficulty" in await submit(pool, body)
    partials = await pool.ctx.store.recent_partials(farmer.plotnft.launcher_id, since=0)
    assert partials[0].end_of_sub_slot and partials[0].sp_hash == eos.sp_hash

    # Twelve sub-slots later chia's node no longer looks back far enough and calls the end of sub-slot "reverted";
    # the pool searches the chain itself, so a confirmation that fell behind still credits the partial.
    await world.farm_blocks(1, skip_slots=12)
    node = pool.ctx.node
    assert isinstance(node, RpcFullNode)
    assert (await node._client.get_recent_signage_point_or_eos(None, eos.sp_hash))["reverted"]
    info = await node.end_of_sub_slot(eos.sp_hash)
    assert info is not None and not info.reverted
    # Found once, remembered: the next partials of this end of sub-slot do not make the pool search again.
    observer, calls = node.observer, []
    node.observer = lambda name, seconds, answered: calls.append(name)
    try:
        again = await node.end_of_sub_slot(eos.sp_hash)
    finally:
        node.observer = observer
    assert again is not None and not again.reverted
    assert "get_block_records" not in calls and "get_recent_signage_point_or_eos" in calls


async def test_invalid_authentication_token(world: World, pool: PoolUnderTest, farmer: Farmer) -> None:
    sp, found = await fresh_proofs(world, farmer.plots)
    timeout = pool.ctx.config.pool.authentication_token_timeout
    body = partial_body(farmer.plotnft.launcher_id, pool.token + timeout + 1, found[0], sp, farmer.auth_sk)
    assert error_code(await submit(pool, body)) is PoolErrorCode.INVALID_AUTHENTICATION_TOKEN


async def test_unknown_farmer(world: World, pool: PoolUnderTest, farmer: Farmer) -> None:
    sp, found = await fresh_proofs(world, farmer.plots)
    body = partial_body(bytes32(std_hash(b"nobody")), pool.token, found[0], sp, farmer.auth_sk)
    assert error_code(await submit(pool, body)) is PoolErrorCode.FARMER_NOT_KNOWN


async def test_signatures(world: World, pool: PoolUnderTest, farmer: Farmer) -> None:
    sp, found = await fresh_proofs(world, farmer.plots)
    launcher = farmer.plotnft.launcher_id
    # Signed with an authentication key that is not the farmer's latest.
    stranger = AugSchemeMPL.key_gen(std_hash(b"stranger"))
    body = partial_body(launcher, pool.token, found[0], sp, stranger)
    assert error_code(await submit(pool, body)) is PoolErrorCode.INVALID_SIGNATURE
    # Signed by the authentication key alone, without the plot key.
    body = partial_body(launcher, pool.token, found[0], sp, farmer.auth_sk)
    payload_hash = std_hash(b"")  # any wrong message
    body["aggregate_signature"] = "0x" + bytes(AugSchemeMPL.sign(farmer.auth_sk, payload_hash)).hex()
    assert error_code(await submit(pool, body)) is PoolErrorCode.INVALID_SIGNATURE
    # A payload changed after signing.
    body = partial_body(launcher, pool.token, found[0], sp, farmer.auth_sk)
    body["payload"]["harvester_id"] = "0x" + "33" * 32
    assert error_code(await submit(pool, body)) is PoolErrorCode.INVALID_SIGNATURE


async def test_signature_outside_its_group(world: World, pool: PoolUnderTest, farmer: Farmer) -> None:
    # POST /partial decodes the signature without its (costly) group check, since aggregate_verify checks it: the
    # pool must refuse the genuine signature plus a point of small order, and accept the genuine one after it.
    sp, found = await fresh_proofs(world, farmer.plots)
    body = partial_body(farmer.plotnft.launcher_id, pool.token, found[0], sp, farmer.auth_sk)
    signature = G2Element.from_bytes(bytes.fromhex(body["aggregate_signature"][2:]))
    shifted = bytes(signature + torsion_point_of_g2_curve())
    with pytest.raises(ValueError):
        G2Element.from_bytes(shifted)  # on the curve, outside the group
    forged = dict(body, aggregate_signature="0x" + shifted.hex())
    assert error_code(await submit(pool, forged)) is PoolErrorCode.INVALID_SIGNATURE
    assert await submit(pool, body) == {"new_difficulty": 1}


async def test_proof_of_another_pool_contract(
    world: World, pool: PoolUnderTest, farmer: Farmer, other_farmer: Farmer
) -> None:
    sp, found = await fresh_proofs(world, other_farmer.plots)
    # Farmer A sends B's proof, correctly signed with B's plot key and A's authentication key.
    body = partial_body(farmer.plotnft.launcher_id, pool.token, found[0], sp, farmer.auth_sk)
    assert error_code(await submit(pool, body)) is PoolErrorCode.INVALID_P2_SINGLETON_PUZZLE_HASH


async def test_unknown_signage_point_is_not_found(world: World, pool: PoolUnderTest, farmer: Farmer) -> None:
    sp, found = await fresh_proofs(world, farmer.plots)
    body = partial_body(
        farmer.plotnft.launcher_id, pool.token, found[0], sp, farmer.auth_sk, sp_hash=bytes32(std_hash(b"no sp"))
    )
    started = time.monotonic()
    assert error_code(await submit(pool, body)) is PoolErrorCode.NOT_FOUND
    waited = time.monotonic() - started
    assert SIGNAGE_POINT_WAIT * 0.5 <= waited < SIGNAGE_POINT_WAIT + 2


async def test_excess_partials_are_refused_at_once_as_busy_while_the_pool_keeps_answering(
    world: World, pool: PoolUnderTest, farmer: Farmer
) -> None:
    admission = pool.client.app[ADMISSION]
    sp, found = await fresh_proofs(world, farmer.plots, wanted=1)
    # Partials for a signage point the node does not know stay in flight for the signage point wait.
    waiting = [
        partial_body(farmer.plotnft.launcher_id, pool.token, found[0], sp, farmer.auth_sk, sp_hash=bytes32(std_hash(n)))
        for n in (b"unknown 1", b"unknown 2")
    ]
    admission.limit = 2
    try:
        holding = asyncio.gather(*(submit(pool, body) for body in waiting))
        for _ in range(1000):  # until both are being handled (a hang guard, not a timing assertion)
            if admission.in_flight == 2:
                break
            await asyncio.sleep(0.01)
        valid = partial_body(farmer.plotnft.launcher_id, pool.token, found[0], sp, farmer.auth_sk)
        busy = await submit(pool, valid)
        assert error_code(busy) is PoolErrorCode.SERVER_EXCEPTION and "busy" in busy["error_message"]
        assert admission.in_flight == 2  # answered while both places were still taken
        assert "name" in await pool.get("/pool_info", {})  # the other endpoints keep answering
        assert [error_code(reply) for reply in await holding] == [PoolErrorCode.NOT_FOUND] * 2
        assert await submit(pool, valid) == {"new_difficulty": 1}  # once a place is free, the same partial counts
    finally:
        admission.limit = pool.ctx.config.partials.max_in_flight
    assert admission.in_flight == 0


async def test_a_slow_body_holds_no_place_among_partials_in_flight(
    world: World, pool: PoolUnderTest, farmer: Farmer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that sends its headers and then trickles (or never finishes) its body is refused once the body read
    times out, and meanwhile takes none of the places of partials in flight: the farmers' partials keep counting."""
    monkeypatch.setattr(guard, "BODY_READ_TIMEOUT", 1.0)
    admission = pool.client.app[ADMISSION]
    admission.limit = 1
    server = pool.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(b"POST /partial HTTP/1.1\r\nHost: pool\r\nContent-Type: application/json\r\n")
        writer.write(b'Content-Length: 1000\r\n\r\n{"payload": ')
        await writer.drain()
        sp, found = await fresh_proofs(world, farmer.plots, wanted=1)
        valid = partial_body(farmer.plotnft.launcher_id, pool.token, found[0], sp, farmer.auth_sk)
        assert "new_difficulty" in await submit(pool, valid)  # the one place was free
        answer = b""
        while not answer.rstrip().endswith(b"}"):  # the slow client's answer, once its read timed out
            chunk = await asyncio.wait_for(reader.read(4096), 30)
            assert chunk, answer
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        refused = json.loads(body)
        assert refused["error_code"] == PoolErrorCode.REQUEST_FAILED.value and "within 1 s" in refused["error_message"]
    finally:
        admission.limit = pool.ctx.config.partials.max_in_flight
        writer.close()
    assert admission.in_flight == 0


async def test_one_address_cannot_take_the_places_of_other_farmers(
    world: World, pool: PoolUnderTest, farmer: Farmer, other_farmer: Farmer
) -> None:
    """A client at one address tries to take every place (farmer A's own partials for signage points the node does
    not know wait there) and adds partials forged for farmer B's launcher id: beyond its share it is answered busy at
    once, and farmer B's own partial, from its own address, is accepted. Without the share, the waiting partials
    alone would have filled the pool."""
    admission = pool.client.app[ADMISSION]
    flooder, honest = "203.0.113.9", "198.51.100.9"
    # Farmer B's proof first: the flood holds its places only for the signage point wait.
    sp_b, found_b = await fresh_proofs(world, other_farmer.plots)
    sp, found = await fresh_proofs(world, farmer.plots)
    launcher, forger = farmer.plotnft.launcher_id, AugSchemeMPL.key_gen(std_hash(b"forger"))
    waiting = [
        partial_body(launcher, pool.token, found[0], sp, farmer.auth_sk, sp_hash=bytes32(std_hash(n)))
        for n in (b"held 1", b"held 2", b"held 3", b"held 4")
    ]
    admission.limit, admission.per_address = 4, 2
    try:
        refused_before = admission.refused
        holding = asyncio.gather(*(submit_from(pool, body, flooder) for body in waiting))
        for _ in range(1000):  # until two are handled and two refused (a hang guard, not a timing assertion)
            if admission.held_by(flooder) == 2 and admission.refused == refused_before + 2:
                break
            await asyncio.sleep(0.01)
        forged = partial_body(other_farmer.plotnft.launcher_id, pool.token, found_b[0], sp_b, forger)
        for reply in await asyncio.gather(*(submit_from(pool, forged, flooder) for _ in range(5))):
            assert error_code(reply) is PoolErrorCode.SERVER_EXCEPTION and "from your address" in reply["error_message"]
        assert admission.held_by(flooder) == 2  # answered while the address's places were still taken
        own = partial_body(other_farmer.plotnft.launcher_id, pool.token, found_b[0], sp_b, other_farmer.auth_sk)
        assert await submit_from(pool, own, honest) == {"new_difficulty": 1}
        held = sorted(error_code(reply).name for reply in await holding)
        assert held == ["NOT_FOUND", "NOT_FOUND", "SERVER_EXCEPTION", "SERVER_EXCEPTION"]
    finally:
        admission.limit = pool.ctx.config.partials.max_in_flight
        admission.per_address = pool.ctx.config.partials.max_in_flight_per_address
    assert admission.in_flight == 0


async def test_a_refusal_the_store_cannot_record_still_tells_the_farmer_why(
    world: World, pool: PoolUnderTest, farmer: Farmer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def store_down(refusal: object) -> None:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(pool.client.app[PARTIALS]._writer, "add_refusal", store_down)
    _, found = await fresh_proofs(world, farmer.plots)
    later = await world.new_signage_point()
    body = partial_body(farmer.plotnft.launcher_id, pool.token, found[0], later, farmer.auth_sk)
    assert error_code(await submit(pool, body)) is PoolErrorCode.INVALID_PROOF


async def test_proof_for_another_signage_point_is_invalid(world: World, pool: PoolUnderTest, farmer: Farmer) -> None:
    _, found = await fresh_proofs(world, farmer.plots)
    later = await world.new_signage_point()  # known to the node, but not what the proof answers
    body = partial_body(farmer.plotnft.launcher_id, pool.token, found[0], later, farmer.auth_sk)
    assert error_code(await submit(pool, body)) is PoolErrorCode.INVALID_PROOF


async def test_corrupted_proof_is_invalid(world: World, pool: PoolUnderTest, farmer: Farmer) -> None:
    sp, found = await fresh_proofs(world, farmer.plots)
    proof = found[0].proof_of_space
    corrupted_bytes = bytearray(proof.proof)
    corrupted_bytes[10] ^= 0xFF
    corrupted = FoundProof(proof.replace(proof=bytes(corrupted_bytes)), found[0].plot, found[0].quality_string)
    body = partial_body(farmer.plotnft.launcher_id, pool.token, corrupted, sp, farmer.auth_sk)
    assert error_code(await submit(pool, body)) is PoolErrorCode.INVALID_PROOF


async def test_proof_not_good_enough(world: World, pool: PoolUnderTest, farmer: Farmer) -> None:
    launcher = farmer.plotnft.launcher_id
    await pool.ctx.store.set_difficulty(launcher, HUGE_DIFFICULTY, pool.ctx.now())
    try:
        sp, found = await fresh_proofs(world, farmer.plots)
        body = partial_body(launcher, pool.token, found[0], sp, farmer.auth_sk)
        assert error_code(await submit(pool, body)) is PoolErrorCode.PROOF_NOT_GOOD_ENOUGH
    finally:
        await pool.ctx.store.set_difficulty(launcher, 1, pool.ctx.now())


async def test_too_late(world: World, pool: PoolUnderTest, farmer: Farmer) -> None:
    sp, found = await fresh_proofs(world, farmer.plots)
    pool.clock.offset += pool.ctx.config.partials.time_limit + 5
    try:
        body = partial_body(farmer.plotnft.launcher_id, pool.token, found[0], sp, farmer.auth_sk)
        assert error_code(await submit(pool, body)) is PoolErrorCode.TOO_LATE
    finally:
        pool.clock.offset -= pool.ctx.config.partials.time_limit + 5


async def test_too_late_by_half_a_second(world: World, pool: PoolUnderTest, farmer: Farmer) -> None:
    """The time limit is compared to the sub-second: with whole seconds it could pass (truncating the receipt time
    makes a partial up to 1 s younger)."""
    sp, found = await fresh_proofs(world, farmer.plots)
    seen = await pool.signage_points.lookup(sp.sp_hash, sp.end_of_sub_slot)
    assert seen is not None
    late_by = seen.time_received + pool.ctx.config.partials.time_limit + 0.5 - time.time()
    pool.clock.offset += late_by
    try:
        body = partial_body(farmer.plotnft.launcher_id, pool.token, found[0], sp, farmer.auth_sk)
        reply = await submit(pool, body)
        assert error_code(reply) is PoolErrorCode.TOO_LATE
        assert f"the limit is {pool.ctx.config.partials.time_limit} s" in reply["error_message"]
    finally:
        pool.clock.offset -= late_by


async def scrape(pool: PoolUnderTest) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics read with prometheus-client's own text parser: (sample name, labels) -> value."""
    response = await pool.client.get("/metrics", headers=OPERATOR_HEADERS)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def partials_total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], result: str) -> float:
    return samples.get(("pool_partials_total", (("result", result),)), 0.0)


async def test_metrics_count_partials_as_they_are_sent(
    world: World, pool: PoolUnderTest, farmer: Farmer, other_farmer: Farmer
) -> None:
    launcher = farmer.plotnft.launcher_id
    before = await scrape(pool)
    refusals_before = {c.outcome: c.count for c in await pool.ctx.store.partial_counts(0, launcher)}

    sp, found = await fresh_proofs(world, farmer.plots)
    body = partial_body(launcher, pool.token, found[0], sp, farmer.auth_sk)
    first = await submit(pool, body)
    assert "new_difficulty" in first
    assert await submit(pool, body) == first  # the same proof again: answered, not credited again
    unknown = partial_body(bytes32(std_hash(b"nobody")), pool.token, found[0], sp, farmer.auth_sk)
    assert error_code(await submit(pool, unknown)) is PoolErrorCode.FARMER_NOT_KNOWN
    # Signed by farmer A, with a proof of B's plot: refused after the signature check, before any look-up.
    other_sp, others = await fresh_proofs(world, other_farmer.plots)
    foreign = partial_body(launcher, pool.token, others[0], other_sp, farmer.auth_sk)
    assert error_code(await submit(pool, foreign)) is PoolErrorCode.INVALID_P2_SINGLETON_PUZZLE_HASH
    after = await scrape(pool)

    assert partials_total(after, "accepted") == partials_total(before, "accepted") + 1
    assert partials_total(after, "resent") == partials_total(before, "resent") + 1
    assert partials_total(after, "REQUEST_FAILED") == partials_total(before, "REQUEST_FAILED")
    assert partials_total(after, "FARMER_NOT_KNOWN") == partials_total(before, "FARMER_NOT_KNOWN") + 1
    foreign_name = "INVALID_P2_SINGLETON_PUZZLE_HASH"
    assert partials_total(after, foreign_name) == partials_total(before, foreign_name) + 1
    timing = ("pool_http_request_duration_seconds_count", (("endpoint", "/partial"), ("method", "POST")))
    assert after[timing] == before.get(timing, 0.0) + 4
    hits = ("pool_signage_point_cache_lookups_total", (("result", "hit"),))
    misses = ("pool_signage_point_cache_lookups_total", (("result", "miss"),))
    # The farmer not known and the foreign proof are refused before any lookup; of the other two (the first copy and
    # the resend), one asked the node and one hit the cache.
    assert after.get(hits, 0) + after.get(misses, 0) == before.get(hits, 0) + before.get(misses, 0) + 2
    pending = await pool.ctx.store.pending_partials(received_before=pool.ctx.now() + 1)
    assert after[("pool_partials_pending", ())] == len(pending)
    assert after[("pool_farmers", (("membership", "member"),))] == len(await pool.ctx.store.list_farmers(True))

    # The signed refusal is kept for the farmer's chart; the anonymous one (no verified signature) is not, and a
    # resend is no refusal.
    refusals_after = {c.outcome: c.count for c in await pool.ctx.store.partial_counts(0, launcher)}
    assert refusals_after.get(foreign_name, 0) == refusals_before.get(foreign_name, 0) + 1
    assert refusals_after.get("REQUEST_FAILED", 0) == refusals_before.get("REQUEST_FAILED", 0)
    assert "FARMER_NOT_KNOWN" not in refusals_after


async def test_operator_status(pool: PoolUnderTest, farmer: Farmer) -> None:
    response = await pool.client.get("/status", headers=OPERATOR_HEADERS)
    assert response.status == 200
    status = await response.json()
    pending = await pool.ctx.store.pending_partials(received_before=pool.ctx.now() + 1)
    assert status["partials"]["pending"] == len(pending)
    assert status["chain"]["node_synced"] is True and status["chain"]["peak_height"] > 0
    assert status["ledger"]["balanced"] is True
    assert status["open_round"] is None

    for path in ("/status", "/metrics"):
        assert (await pool.client.get(path)).status == 401
        wrong = await pool.client.get(path, headers={"Authorization": "Bearer " + "x" * 24})
        assert wrong.status == 401
        # A token that is not UTF-8 (aiohttp hands it on with surrogates) is as wrong as any other.
        server = pool.client.server
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: pool\r\nConnection: close\r\n".encode())
            writer.write(b"Authorization: Bearer \xff\xfe" + b"x" * 22 + b"\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readline(), 30)
            assert head.startswith(b"HTTP/1.1 401"), head
        finally:
            writer.close()
    # Without a token they list nobody's balance to anyone: closed, and the body says how to open them.
    config = pool.ctx.config
    pool.ctx.config = dataclasses.replace(config, server=dataclasses.replace(config.server, operator_token=None))
    try:
        for path in ("/status", "/metrics"):
            closed = await pool.client.get(path, headers=OPERATOR_HEADERS)
            assert closed.status == 403
            assert "server.operator_token" in (await closed.json())["error"]
    finally:
        pool.ctx.config = config


async def test_the_join_link_never_comes_from_the_host_header(pool: PoolUnderTest) -> None:
    """A caching proxy in front of the pool would serve a page whose link a client's Host header wrote to everyone."""
    config = pool.ctx.config
    poisoned = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"}
    try:
        for server, shown in (
            ({"public_url": "https://pool.example.com"}, "-u https://pool.example.com"),
            ({"public_url": None, "host": "127.0.0.1", "port": 8080}, "-u http://127.0.0.1:8080"),
            ({"public_url": None, "host": "0.0.0.0"}, "has not set this pool's URL (server.public_url)"),
        ):
            pool.ctx.config = dataclasses.replace(config, server=dataclasses.replace(config.server, **server))
            page = await (await pool.client.get("/", headers=poisoned)).text()
            assert shown in page and "evil.example" not in page
    finally:
        pool.ctx.config = config


async def newer_put_token(pool: PoolUnderTest, launcher_id: bytes32) -> int:
    """A token newer than the farmer's last accepted PUT (a PUT needs one), within the pool's token window."""
    record = await pool.ctx.store.get_farmer(launcher_id)
    assert record is not None
    last = record.last_put_token
    return pool.token if last is None or last < pool.token else last + 1


async def put_difficulty(pool: PoolUnderTest, farmer: Farmer, difficulty: int) -> None:
    launcher = farmer.plotnft.launcher_id
    token = await newer_put_token(pool, launcher)
    put = put_farmer_body(launcher, farmer.plotnft.owner_secret_key, token, suggested_difficulty=difficulty)
    assert (await pool.send("PUT", "/farmer", put))["suggested_difficulty"] is True


async def recorded_points(pool: PoolUnderTest, launcher_id: bytes32, proofs: list[FoundProof]) -> list[int]:
    recorded = await pool.ctx.store.recent_partials(launcher_id, since=0)
    return [
        next(p.difficulty for p in recorded if p.proof_hash == proof_identity(p.sp_hash, found.proof_of_space))
        for found in proofs
    ]


async def test_a_raise_with_put_never_reaches_partials_of_earlier_signage_points(
    world: World, pool: PoolUnderTest, farmer: Farmer
) -> None:
    """Points by timing: a farmer that raises its difficulty knows when the raise takes effect (after the cooldown),
    and holds the proofs of a signage point seen before it until after the switch, for more points each. They are
    worth the difficulty in force at their signage point, whenever they are sent."""
    launcher = farmer.plotnft.launcher_id
    sp, found = await fresh_proofs(world, farmer.plots, wanted=2)
    await put_difficulty(pool, farmer, 3)
    # Within the cooldown the farmer is told its old difficulty.
    assert await submit(pool, partial_body(launcher, pool.token, found[0], sp, farmer.auth_sk)) == {"new_difficulty": 1}
    pool.clock.offset += PUT_COOLDOWN + 1  # the switch has passed, the signage point is still in time
    try:
        # Told its new difficulty, for the signage points to come; this one's proof is still worth 1.
        reply = await submit(pool, partial_body(launcher, pool.token, found[1], sp, farmer.auth_sk))
        assert reply == {"new_difficulty": 3}
    finally:
        pool.clock.offset -= PUT_COOLDOWN + 1
    assert await recorded_points(pool, launcher, found[:2]) == [1, 1]
    await pool.ctx.store.set_difficulty(launcher, 1, pool.ctx.now())


async def test_a_put_difficulty_counts_from_the_first_signage_point_after_the_switch(
    world: World, pool: PoolUnderTest, farmer: Farmer
) -> None:
    launcher = farmer.plotnft.launcher_id
    pool.clock.offset -= PUT_COOLDOWN + 1  # asked for a cooldown ago: in force for signage points from now on
    try:
        await put_difficulty(pool, farmer, 3)
    finally:
        pool.clock.offset += PUT_COOLDOWN + 1
    sp, found = await fresh_proofs(world, farmer.plots)
    assert await submit(pool, partial_body(launcher, pool.token, found[0], sp, farmer.auth_sk)) == {"new_difficulty": 3}
    assert await recorded_points(pool, launcher, found[:1]) == [3]
    await pool.ctx.store.set_difficulty(launcher, 1, pool.ctx.now())


async def test_a_lowering_with_put_never_reaches_back_to_earlier_signage_points(
    world: World, pool: PoolUnderTest, farmer: Farmer
) -> None:
    """The other half of points by timing: ahead of a known lowering, hold the proofs too weak for the current
    difficulty until after the switch. A proof must meet the difficulty of its signage point."""
    launcher = farmer.plotnft.launcher_id
    await pool.ctx.store.set_difficulty(launcher, HUGE_DIFFICULTY, pool.ctx.now())
    try:
        sp, found = await fresh_proofs(world, farmer.plots)
        await put_difficulty(pool, farmer, 1)
        pool.clock.offset += PUT_COOLDOWN + 1
        try:
            reply = await submit(pool, partial_body(launcher, pool.token, found[0], sp, farmer.auth_sk))
            assert error_code(reply) is PoolErrorCode.PROOF_NOT_GOOD_ENOUGH
            assert str(HUGE_DIFFICULTY) in reply["error_message"]
        finally:
            pool.clock.offset -= PUT_COOLDOWN + 1
    finally:
        await pool.ctx.store.set_difficulty(launcher, 1, pool.ctx.now())


async def test_the_difficulty_loop_changing_after_a_signage_point_leaves_its_partials_alone(
    world: World, pool: PoolUnderTest, farmer: Farmer
) -> None:
    launcher = farmer.plotnft.launcher_id
    sp, found = await fresh_proofs(world, farmer.plots)
    # What the difficulty loop writes: in force from the next whole second, after every signage point seen so far.
    assert await pool.ctx.store.adjust_difficulty(launcher, 1, 5, pool.ctx.now() + 1)
    pool.clock.offset += 2  # received once the change is in force
    try:
        reply = await submit(pool, partial_body(launcher, pool.token, found[0], sp, farmer.auth_sk))
        assert reply == {"new_difficulty": 5}
        assert await recorded_points(pool, launcher, found[:1]) == [1]
    finally:
        pool.clock.offset -= 2
        await pool.ctx.store.set_difficulty(launcher, 1, pool.ctx.now())


async def test_farmer_no_longer_member(world: World, pool: PoolUnderTest, other_farmer: Farmer) -> None:
    launcher = other_farmer.plotnft.launcher_id
    record = await pool.ctx.store.get_farmer(launcher)
    assert record is not None
    # What the singleton-following loop records when the PlotNFT leaves the pool.
    await pool.ctx.store.update_singleton(launcher, record.singleton_tip, record.singleton_tip_state, False)
    sp, found = await fresh_proofs(world, other_farmer.plots)
    body = partial_body(launcher, pool.token, found[0], sp, other_farmer.auth_sk)
    assert error_code(await submit(pool, body)) is PoolErrorCode.INVALID_SINGLETON


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"null", b'"a string"', b"[]", b'{"payload": 1}', b'{"payload": {}, "aggregate_signature": 5}'],
)
async def test_garbage_partial(pool: PoolUnderTest, raw: bytes) -> None:
    assert error_code(await pool.send_raw("POST", "/partial", raw)) is PoolErrorCode.REQUEST_FAILED


async def test_malformed_fields(world: World, pool: PoolUnderTest, farmer: Farmer) -> None:
    sp, found = await fresh_proofs(world, farmer.plots)
    body = partial_body(farmer.plotnft.launcher_id, pool.token, found[0], sp, farmer.auth_sk)
    for path, value in [
        (("payload", "sp_hash"), "0x1234"),
        (("payload", "authentication_token"), -1),
        (("payload", "proof_of_space", "plot_public_key"), "0x" + "00" * 48),
        (("aggregate_signature",), "nothex"),
    ]:
        broken = json.loads(json.dumps(body))
        target = broken
        for name in path[:-1]:
            target = target[name]
        target[path[-1]] = value
        assert error_code(await submit(pool, broken)) is PoolErrorCode.REQUEST_FAILED, path


async def test_signage_point_lookups_are_shared(world: World, pool: PoolUnderTest) -> None:
    cache = SignagePointCache(pool.ctx.node, wait=2.0, poll_interval=0.25)
    sp = await world.new_signage_point()
    infos = await asyncio.gather(*(cache.lookup(sp.sp_hash, False) for _ in range(20)))
    assert cache.node_requests == 1
    assert all(info is not None and info.challenge_hash == sp.challenge_hash for info in infos)
    assert await cache.lookup(sp.sp_hash, False) is infos[0]  # cached
    assert cache.node_requests == 1

    # An unknown hash is polled for the wait, by one shared poller, while known ones answer at once: the other
    # point is answered while the unknown one is still being polled (not after its wait, however slow the chain).
    unknown = bytes32(std_hash(b"unknown sp"))
    waiting = asyncio.gather(*(cache.lookup(unknown, False) for _ in range(20)))
    await asyncio.sleep(0.05)
    other = await world.new_signage_point()
    assert not waiting.done(), "a new signage point took longer than the poll's wait: nothing left to compare"
    assert await cache.lookup(other.sp_hash, False) is not None
    assert not waiting.done()
    assert await waiting == [None] * 20
    assert cache.node_requests <= 1 + 9 + 1  # the first lookup, one poller (~8 asks), the other point


def answered_at_once(lookup: Coroutine[Any, Any, T]) -> T:
    """The look-up's answer, asserting it came without waiting for anything (the node, a lock, another task)."""
    try:
        lookup.send(None)
    except StopIteration as answered:
        return cast(T, answered.value)
    lookup.close()
    raise AssertionError("the look-up waited")


async def changed(read: Callable[[], Awaitable[T]], old: object) -> T:
    """The first answer of ``read`` that is not ``old`` (a background re-read replaced it)."""
    for _ in range(500):
        answer = await read()
        if answer is not old:
            return answer
        await asyncio.sleep(0.01)
    raise AssertionError("the cached view was never replaced")


async def test_a_signage_point_is_reread_in_the_background(world: World, pool: PoolUnderTest) -> None:
    """Past half its time to live, a cached signage point still answers at once while one re-read runs behind it;
    past its time to live, it is not used: the look-up waits for the node."""
    now = [1000.0]
    cache = SignagePointCache(pool.ctx.node, wait=0.0, found_ttl=5.0, clock=lambda: now[0])
    sp = await world.new_signage_point()
    first = await cache.lookup(sp.sp_hash, False)
    assert first is not None and cache.node_requests == 1
    now[0] += 2.0
    assert answered_at_once(cache.lookup(sp.sp_hash, False)) is first
    await asyncio.sleep(0.1)
    assert cache.node_requests == 1  # young: no re-read

    def refuse() -> None:
        raise RateLimited("signage point look-ups", 60)

    now[0] += 1.0  # 3 s old: past half its time to live
    assert answered_at_once(cache.lookup(sp.sp_hash, False, admit=refuse)) is first
    await asyncio.sleep(0.1)
    assert cache.node_requests == 1  # a refused re-read is skipped; the view is still within its time to live
    read = [answered_at_once(cache.lookup(sp.sp_hash, False, admit=lambda: None)) for _ in range(10)]
    assert read == [first] * 10
    second = await changed(lambda: cache.lookup(sp.sp_hash, False), first)
    assert second == first and cache.node_requests == 2  # one re-read for the ten

    now[0] += 6.0  # past its time to live: waited for
    waiting = cache.lookup(sp.sp_hash, False)
    with pytest.raises(AssertionError, match="waited"):
        answered_at_once(waiting)
    third = await cache.lookup(sp.sp_hash, False)
    assert third is not second and third == second and cache.node_requests == 3


async def test_the_peak_is_reread_in_the_background(world: World, pool: PoolUnderTest) -> None:
    now = [1000.0]
    peaks = PeakCache(pool.ctx.node, ttl=2.0, clock=lambda: now[0])
    first = await peaks.get()
    now[0] += 0.5
    assert answered_at_once(peaks.get()) is first
    await asyncio.sleep(0.1)
    assert answered_at_once(peaks.get()) is first  # young: not re-read
    await world.farm_blocks(1)
    now[0] += 0.6  # past half its time to live
    assert answered_at_once(peaks.get()) is first
    second = await changed(peaks.get, first)
    assert second.height == first.height + 1
    now[0] += 2.5  # past its time to live
    with pytest.raises(AssertionError, match="waited"):
        answered_at_once(peaks.get())
    assert (await peaks.get()) is not second


async def test_reverted_signage_point(world: World, pool: PoolUnderTest, farmer: Farmer) -> None:
    """A partial for a signage point the node reports reverted is refused as such; the pool follows the node's word.

    chia's node calls a point reverted only when its sub-slot is gone from the chain, and how far back it looks
    depends on the chain's height: on the session's shared chain a one-block reorg may keep the sub-slot. So the
    test reorgs from deeper each time, and checks the pool's answer against what the node says after each reorg
    (a point the node still holds is not refused as reverted)."""
    answers = []
    for depth in range(1, 4):
        sp, found = await fresh_proofs(world, farmer.plots)
        await world.reorg(world.peak_height - depth, world.peak_height + 1)
        info = await pool.ctx.node.signage_point(sp.sp_hash)
        body = partial_body(farmer.plotnft.launcher_id, pool.token, found[0], sp, farmer.auth_sk)
        reply = await submit(pool, body)
        code = PoolErrorCode(reply["error_code"]) if "error_code" in reply else None  # None: accepted
        reverted = info is not None and info.reverted
        answers.append((reverted, code))
        assert (code is PoolErrorCode.REVERTED_SIGNAGE_POINT) == reverted, answers
        if reverted:
            break


async def test_node_unreachable(world: World) -> None:
    rpc = RpcConfig(host="127.0.0.1", port=1, chia_root=world.full_node_rpc.root_path)
    with pytest.raises(ChainUnavailable, match=r"full node at 127\.0\.0\.1:1: "):
        await RpcFullNode.connect(rpc)


async def test_get_farmer_shows_difficulty(pool: PoolUnderTest, farmer: Farmer) -> None:
    params = authenticated_params(
        "get_farmer", farmer.plotnft.launcher_id, pool.target_puzzle_hash, farmer.auth_sk, pool.token
    )
    assert (await pool.get("/farmer", params))["current_difficulty"] == 1


async def test_a_banned_farmer_is_refused_everywhere_and_keeps_what_it_is_owed(
    world: World, pool: PoolUnderTest, farmer: Farmer
) -> None:
    store, launcher = pool.ctx.store, farmer.plotnft.launcher_id
    sp, found = await fresh_proofs(world, farmer.plots, wanted=2)
    received = len(await store.recent_partials(launcher, since=0))
    assert await store.ban_farmer(launcher, "shares one plot among many launchers", pool.ctx.now())
    before = await store.get_farmer(launcher)
    assert before is not None
    try:
        target = pool.target_puzzle_hash
        payout = encode_puzzle_hash(bytes32(std_hash(b"farmer A payout")), "txch")
        refusals = [
            await submit(pool, partial_body(launcher, pool.token, found[0], sp, farmer.auth_sk)),
            await pool.get("/farmer", authenticated_params("get_farmer", launcher, target, farmer.auth_sk, pool.token)),
            await pool.get("/login", authenticated_params("get_login", launcher, target, farmer.auth_sk, pool.token)),
            await pool.send(
                "PUT", "/farmer", put_farmer_body(launcher, farmer.plotnft.owner_secret_key, pool.token + 1)
            ),
            await pool.send("POST", "/farmer", post_farmer_body(farmer.plotnft, farmer.auth_sk, pool.token, payout)),
        ]
        for reply in refusals:
            assert error_code(reply) is PoolErrorCode.REQUEST_FAILED
            assert reply["error_message"] == "banned by the pool operator: shares one plot among many launchers"
        after = await store.get_farmer(launcher)
        assert after is not None and (after.points, after.owed) == (before.points, before.owed)
        assert len(await store.recent_partials(launcher, since=0)) == received  # its partial was not recorded
    finally:
        assert await store.unban_farmer(launcher, pool.ctx.now())
    # Unbanned, its partials count again.
    reply = await submit(pool, partial_body(launcher, pool.token, found[1], sp, farmer.auth_sk))
    assert set(reply) == {"new_difficulty"}, reply
