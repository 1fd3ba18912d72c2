"""Cool-downs: an address whose requests keep being refused is refused at the connection, before anything is read.

The bookkeeping on a clock the tests move (pool.http.cooldown), then the pool's real serve path on a real port
(tests.http.test_connections.serving, no chain): its per-address rate limit refuses the attacker's requests, which
spends the attacker's budget of refused requests, and the attacker's connections are then refused or closed unread,
while another address is served; the cool-down ends after its time.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import uvloop

from pool.chia_adapter import PoolErrorCode, bytes32
from pool.config import LimitsConfig, RateLimit
from pool.http.admission import Admission
from pool.http.cooldown import Cooldowns
from pool.protocol.errors import PoolProtocolError
from pool.protocol.rate_limits import RateLimited, RateLimits, SigningKey
from tests.http.test_connections import ATTACKER, HONEST, POOL_INFO, SLACK, Served, serving

FORGER = "192.0.2.1"
NEIGHBOUR = "192.0.2.2"
FARMER = "198.51.100.7"
BUDGET = 3  # refused requests an address may have at once; the next one cools it down
SECONDS = 60.0
NEVER = 0.001  # a refill rate too slow to matter within a test (the least the configuration takes)

FORGED = PoolProtocolError(PoolErrorCode.INVALID_SIGNATURE, "the signature does not verify")
BUSY = PoolProtocolError(PoolErrorCode.SERVER_EXCEPTION, "the pool is busy")
RATE_LIMITED = RateLimited("more than 50 per second requests", 1.0)
NOT_GOOD_ENOUGH = PoolProtocolError(PoolErrorCode.PROOF_NOT_GOOD_ENOUGH, "the proof is not good enough")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cooldowns(clock: Clock, admission: Admission | None = None, kept: int = 100) -> Cooldowns:
    limits = RateLimits(LimitsConfig(refused_requests=RateLimit(NEVER, BUDGET)), clock)
    proven = admission if admission is not None else Admission(8, clock=clock)
    return Cooldowns(SECONDS, kept, limits, proven.is_proven, clock)


def test_an_address_is_cooled_down_once_its_budget_of_refused_requests_is_spent() -> None:
    clock = Clock()
    gate = cooldowns(clock)
    for error in (FORGED, RATE_LIMITED, FORGED):  # the budget: any refusal as forged or beyond a limit spends it
        gate.refused(FORGER, error)
        assert gate.remaining(FORGER) == 0.0
    gate.refused(FORGER, FORGED)
    assert gate.remaining(FORGER) == SECONDS and gate.started == 1
    assert gate.remaining(NEIGHBOUR) == 0.0  # another address is not

    # The cool-down ends after its time, and the address has a whole budget again.
    clock.now += SECONDS
    assert gate.remaining(FORGER) == 0.0
    for _ in range(BUDGET):
        gate.refused(FORGER, FORGED)
    assert gate.remaining(FORGER) == 0.0
    gate.refused(FORGER, FORGED)
    assert gate.remaining(FORGER) == SECONDS and gate.started == 2


def test_refusals_an_honest_farmer_meets_in_the_normal_course_spend_nothing() -> None:
    gate = cooldowns(Clock())
    for _ in range(10 * BUDGET):
        gate.refused(FORGER, NOT_GOOD_ENOUGH)
        gate.refused(FORGER, BUSY)  # an overloaded pool's answer, not the client's doing
        gate.refused(FORGER, PoolProtocolError(PoolErrorCode.TOO_LATE, "too late"))
        gate.refused(FORGER, PoolProtocolError(PoolErrorCode.INVALID_AUTHENTICATION_TOKEN, "an old token"))
    assert gate.remaining(FORGER) == 0.0 and gate.started == 0


def test_busy_answers_count_once_a_signature_from_the_address_failed() -> None:
    clock = Clock()
    limits = RateLimits(
        LimitsConfig(refused_requests=RateLimit(NEVER, BUDGET), failed_signatures_per_address=RateLimit(1.0, 100)),
        clock,
    )
    gate = Cooldowns(SECONDS, 100, limits, Admission(8, clock=clock).is_proven, clock)
    for _ in range(10 * BUDGET):  # an honest farmer the pool does not know yet, answered busy: nothing spent
        gate.refused(FORGER, BUSY)
    assert gate.remaining(FORGER) == 0.0
    # One of its signatures failed: busy answers count now, until its budget of failures has refilled.
    limits.signature_checked(SigningKey.AUTHENTICATION, bytes32(b"\x01" * 32), FORGER, verified=False)
    gate.refused(FORGER, FORGED)
    for _ in range(BUDGET - 1):
        gate.refused(FORGER, BUSY)
    assert gate.remaining(FORGER) == 0.0
    clock.now += 1.0  # the failure's token is back: busy no longer counts
    gate.refused(FORGER, BUSY)
    assert gate.remaining(FORGER) == 0.0
    limits.signature_checked(SigningKey.AUTHENTICATION, bytes32(b"\x01" * 32), FORGER, verified=False)
    gate.refused(FORGER, BUSY)
    assert gate.remaining(FORGER) == SECONDS


def test_an_address_with_a_partial_accepted_lately_is_never_cooled_down() -> None:
    # The farmers behind a NAT keep being served when someone behind the same NAT floods the pool.
    clock = Clock()
    admission = Admission(8, clock=clock)
    admission.prove(FARMER)
    gate = cooldowns(clock, admission)
    for _ in range(10 * BUDGET):
        gate.refused(FARMER, FORGED)
    assert gate.remaining(FARMER) == 0.0 and gate.started == 0


def test_the_addresses_remembered_are_bounded() -> None:
    gate = cooldowns(Clock(), kept=2)
    for address in (FORGER, NEIGHBOUR, FARMER):
        for _ in range(BUDGET + 1):
            gate.refused(address, FORGED)
    assert gate.started == 3
    assert gate.remaining(FORGER) == 0.0  # the earliest forgotten first
    assert gate.remaining(NEIGHBOUR) == gate.remaining(FARMER) == SECONDS


async def request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, wire: bytes = POOL_INFO) -> bytes:
    """One request on a keep-alive connection: the head of its answer and its body; b"" when the connection closed
    without an answer."""
    writer.write(wire)
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), SLACK)
    except asyncio.IncompleteReadError as closed:
        assert closed.partial == b"", closed.partial
        return b""
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    return head + await asyncio.wait_for(reader.readexactly(length), SLACK)


async def cool_the_attacker_down(pool: Served) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Requests from ATTACKER until it is cooled down; its keep-alive connection, still open."""
    reader, writer = await pool.connect(ATTACKER)
    served = await request(reader, writer)
    assert served.startswith(b"HTTP/1.1 200") and b"error_code" not in served  # the per-address limit's one request
    for _ in range(BUDGET + 1):  # refused by the per-address limit: a protocol error (HTTP 200), read and answered
        refused = await request(reader, writer)
        assert refused.startswith(b"HTTP/1.1 200"), refused
        assert json.loads(refused.split(b"\r\n\r\n", 1)[1])["error_code"] == PoolErrorCode.REQUEST_FAILED.value
    return reader, writer


async def test_a_cooled_down_address_is_refused_at_the_connection_and_others_are_served(tmp_path: Path) -> None:
    cooldown = 1.0
    limits: dict[str, Any] = {
        "per_address": {"rate": NEVER, "burst": 1},
        "refused_requests": {"rate": NEVER, "burst": BUDGET},
        "cooldown": cooldown,
    }
    async with serving(tmp_path, **limits) as pool:
        assert pool.config.limits.cooldown == cooldown
        reader, writer = await cool_the_attacker_down(pool)

        # Its open connection is closed when it sends its next request, without an answer: the request is not read.
        assert await request(reader, writer) == b""
        writer.close()

        # A new connection is answered 429 before it sends anything, and closed.
        reader, writer = await pool.connect(ATTACKER)
        refused = await asyncio.wait_for(reader.read(), SLACK)
        writer.close()
        assert refused.startswith(b"HTTP/1.1 429") and b"Retry-After: 1\r\n" in refused, refused

        # Another address is served meanwhile.
        assert (await pool.pool_info(HONEST)).startswith(b"HTTP/1.1 200")

        # After the cool-down, the address's requests are read and answered again (here: the per-address limit's
        # protocol error, still spent).
        await asyncio.sleep(cooldown + 0.1)
        reader, writer = await pool.connect(ATTACKER)
        answered = await request(reader, writer)
        writer.close()
        assert answered.startswith(b"HTTP/1.1 200") and b"rate limit" in answered, answered


async def test_a_cooled_down_client_of_a_trusted_proxy_is_refused_before_its_body_is_read(tmp_path: Path) -> None:
    # The proxy's connections carry other clients too: they stay open, and the client's requests are refused by the
    # first middleware; the proxy's other clients are served.
    limits: dict[str, Any] = {
        "per_address": {"rate": NEVER, "burst": 1},
        "refused_requests": {"rate": NEVER, "burst": BUDGET},
        "trusted_proxies": [ATTACKER],
    }
    forwarded = POOL_INFO.replace(b"\r\n\r\n", f"\r\nX-Forwarded-For: {FORGER}\r\n\r\n".encode())
    other = POOL_INFO.replace(b"\r\n\r\n", f"\r\nX-Forwarded-For: {NEIGHBOUR}\r\n\r\n".encode())
    async with serving(tmp_path, **limits) as pool:
        reader, writer = await pool.connect(ATTACKER)
        answers = [await request(reader, writer, forwarded) for _ in range(BUDGET + 3)]
        assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers), answers
        assert b"rate limit: more than" in answers[BUDGET + 1]  # the per-address limit's, the last that strikes
        assert b"rate limit: too many requests from 192.0.2.1 were refused" in answers[-1]
        served = await request(reader, writer, other)
        assert served.startswith(b"HTTP/1.1 200") and b"error_code" not in served
        writer.close()


async def test_the_connection_refusals_hold_on_uvloop(tmp_path: Path) -> None:
    """`python -m pool` serves on uvloop, whose transports are not asyncio's classes."""

    async def on_uvloop() -> tuple[bytes, bytes, bytes]:
        limits: dict[str, Any] = {
            "per_address": {"rate": NEVER, "burst": 1},
            "refused_requests": {"rate": NEVER, "burst": BUDGET},
        }
        async with serving(tmp_path, **limits) as pool:
            reader, writer = await cool_the_attacker_down(pool)
            closed = await request(reader, writer)
            writer.close()
            return closed, await pool.pool_info(ATTACKER), await pool.pool_info(HONEST)

    closed, refused, served = await asyncio.to_thread(uvloop.run, on_uvloop())  # in a thread with a loop of its own
    assert closed == b"" and refused.startswith(b"HTTP/1.1 429") and served.startswith(b"HTTP/1.1 200")
