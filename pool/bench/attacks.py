"""The attack phase: issue 24's attacks, each in turn, run against the bench's pool while the honest farmers send
their corpus partials at a moderate rate.

Every attack request is real but not its sender's to make: POST /farmer for the corpus's real PlotNFT launcher ids
(rotating) signed by a key that is not their owner's; GET /farmer for them signed by a key that is not their
authentication key; partials with real proofs for real launcher ids and someone else's signature. They come from
loopback addresses other than the honest sender's (127.0.0.1), as from other machines, so that the pool's limits,
which count by client address, see attackers apart from the farmers. The attacker runs in a process of its own
(``pool.bench.attacker``).

Per attack: the honest partials' answers and latency, the attack's requests and how the pool answered them, and the
node calls the pool made meanwhile (its GET /metrics, ``pool_node_rpc_duration_seconds`` counts per call), next to
those of a first row with no attack, for comparison.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from pool.bench.attacker import PREFIX, AttackReport, AttackSpec, HttpRequest
from pool.bench.corpus import Corpus, CorpusPartial, Progress
from pool.bench.load import AUTHENTICATION_TOKEN_TIMEOUT, Outcomes, Sender
from pool.bench.processes import read_answer, start_answering
from pool.bench.signing import Signer
from pool.chia_adapter import (
    AugSchemeMPL,
    AuthenticationPayloadV1,
    GetFarmerRequestV1,
    PostFarmerPayload,
    PostFarmerRequest,
    bytes32,
    std_hash,
    uint64,
)
from pool.devnet.pool_config import OPERATOR_HEADERS
from pool.protocol.auth import current_authentication_token

# The honest target under attack (issue 24): every honest partial accepted, p99 under this.
HONEST_P99_TARGET_MS = 200.0
ATTACKER_KEY = AugSchemeMPL.key_gen(std_hash(b"pool bench attacker"))
READY_TIMEOUT = 120.0
WARM_UP_SECONDS = 0.5  # an http attack runs this long before the honest partials go, to be at its rate
# The sockets are held this share of the honest partials' time before they go: with the bench's 8 s, they then go
# from 6 to 14 s after the sockets were opened, while the pool closes them (its header timeout, 10 s) and the attacker
# opens them again.
SOCKETS_HELD_SHARE = 0.75
NODE_RPC_METRIC = "pool_node_rpc_duration_seconds"


@dataclass(frozen=True)
class Attack:
    key: str  # short name, in the JSON
    name: str
    kind: str
    rate: float  # requests/s (http)
    addresses: tuple[str, ...]
    sockets: int = 0


ATTACK_KEYS = ("post_farmer", "get_farmer", "partials", "idle_sockets")


def attacks(scale: float, keys: Sequence[str] = ()) -> list[Attack]:
    """Issue 24's attacks (those of ``keys`` only, when given); ``scale`` multiplies their rates and sockets (1: the
    issue's; a smoke run, less)."""

    def loopback(block: int, count: int) -> tuple[str, ...]:
        return tuple(f"127.0.{block}.{number}" for number in range(1, count + 1))

    every = [
        Attack("post_farmer", "anonymous POST /farmer, rotating real launcher ids", "http", 50 * scale, loopback(1, 1)),
        Attack("get_farmer", "forged GET /farmer, 7 addresses", "http", 350 * scale, loopback(2, 7)),
        Attack("partials", "forged partials, 20 addresses", "http", 1000 * scale, loopback(3, 20)),
        Attack(
            "idle_sockets",
            "idle sockets, half a request head each, 50 addresses",
            "sockets",
            0.0,
            loopback(4, 50),
            sockets=max(1, round(5000 * scale)),
        ),
    ]
    return [attack for attack in every if not keys or attack.key in keys]


def attack_requests(attack: Attack, corpus: Corpus, signer: Signer, token: int) -> tuple[HttpRequest, ...]:
    """The forged requests an attack rotates through, one or a few per PlotNFT of the corpus."""
    farmers = corpus.farmers
    attacker_public_key = ATTACKER_KEY.get_g1()
    if attack.key == "post_farmer":
        # Real PlotNFTs that never joined (a member's launcher id is answered at once: already known), else the
        # members' (a corpus without bystanders).
        launcher_ids = corpus.bystanders or tuple(farmer.launcher_id for farmer in farmers)
        requests = []
        for launcher_id in launcher_ids:
            payload = PostFarmerPayload(
                launcher_id, uint64(token), attacker_public_key, std_hash(b"attacker payout").hex(), None
            )
            signature = AugSchemeMPL.sign(ATTACKER_KEY, payload.get_hash())
            body = json.dumps(PostFarmerRequest(payload, signature).to_json_dict())
            requests.append(HttpRequest("POST", "/farmer", body))
        return tuple(requests)
    if attack.key == "get_farmer":
        requests = []
        for farmer in farmers:
            message = AuthenticationPayloadV1(
                "get_farmer", farmer.launcher_id, corpus.target_puzzle_hash, uint64(token)
            ).get_hash()
            request = GetFarmerRequestV1(
                authentication_token=uint64(token),
                launcher_id=farmer.launcher_id,
                signature=AugSchemeMPL.sign(ATTACKER_KEY, message),
                authentication_token_v2="",
            )
            query = urlencode({name: str(value) for name, value in request.to_json_dict().items()})
            requests.append(HttpRequest("GET", f"/farmer?{query}", None))
        return tuple(requests)
    if attack.key == "partials":
        # One real proof per PlotNFT (its event's signage point), someone else's signature over something else.
        signature = AugSchemeMPL.sign(ATTACKER_KEY, bytes32(std_hash(b"not the payload")))
        first: dict[bytes32, CorpusPartial] = {}
        for partial in corpus.partials():
            first.setdefault(corpus.farmers[corpus.plots[partial.proof.plot].farmer].launcher_id, partial)
        return tuple(
            HttpRequest("POST", "/partial", signer.forged_partial(partial, token, signature).decode())
            for partial in first.values()
        )
    return ()


class AttackProcess:
    """``python -m pool.bench.attacker``: started, told to stop, its report read back."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, spec: AttackSpec, spec_path: Path, log_path: Path) -> AttackProcess:
        await asyncio.to_thread(spec_path.write_text, json.dumps(spec.to_json()))
        process, ready = await start_answering("pool.bench.attacker", [str(spec_path)], log_path, PREFIX, READY_TIMEOUT)
        attacker = cls(process)
        if ready != "ready":
            await attacker.kill()
            raise RuntimeError(f"the attacker did not start: {ready} (see {log_path})")
        return attacker

    async def stop(self) -> AttackReport:
        assert self.process.stdin is not None
        self.process.stdin.write(b"stop\n")
        await self.process.stdin.drain()
        answer = await asyncio.wait_for(read_answer(self.process, PREFIX), READY_TIMEOUT)
        await self.process.wait()
        if not answer.startswith("result "):
            raise RuntimeError(f"the attacker's report is missing: {answer}")
        return AttackReport.from_json(json.loads(answer.removeprefix("result ")))

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


class NodeCallMeter:
    """The pool's node RPCs per call, from its GET /metrics (each scrape makes calls of its own: subtracted)."""

    def __init__(self, session: aiohttp.ClientSession, pool_url: str) -> None:
        self._session = session
        self._url = f"{pool_url}/metrics"
        self._scrape_cost: Counter[str] = Counter()

    async def read(self) -> Counter[str]:
        async with self._session.get(self._url, headers=OPERATOR_HEADERS) as response:
            text = await response.text()
        counts: Counter[str] = Counter()
        for family in text_string_to_metric_families(text):
            if family.name != NODE_RPC_METRIC:
                continue
            for sample in family.samples:
                if sample.name == NODE_RPC_METRIC + "_count":
                    counts[sample.labels["call"]] += int(sample.value)
        return counts

    async def calibrate(self) -> None:
        """What one scrape costs: two back to back, nothing else of note in between."""
        first = await self.read()
        second = await self.read()
        self._scrape_cost = second - first

    def spent(self, before: Counter[str], after: Counter[str]) -> dict[str, int]:
        """The calls between two readings, less the second reading's own."""
        spent = after - before - self._scrape_cost
        return {call: count for call, count in sorted(spent.items()) if count > 0}


@dataclass
class AttackResult:
    key: str
    name: str
    rate: float | None  # requests/s asked of the attacker (http)
    addresses: int
    sockets: int | None
    honest: Outcomes
    honest_planned: int
    report: AttackReport | None  # None: the row without attack
    node_calls: dict[str, int]
    seconds: float  # from the first node call reading to the last


@dataclass(frozen=True)
class AttackOptions:
    honest_rate: float  # partials/s of the honest farmers during each attack
    seconds: float  # of honest partials under each attack
    scale: float  # of the attacks' rates and sockets
    keys: tuple[str, ...] = ()  # the attacks to run (empty: all)


async def run_attacks(
    corpus: Corpus,
    sender: Sender,
    pool_url: str,
    partials: Callable[[int, str], Sequence[CorpusPartial]],
    options: AttackOptions,
    run_dir: Path,
    progress: Progress,
) -> list[AttackResult]:
    """A row with no attack, then each attack in turn; ``partials(count, name)`` takes the honest partials of a row
    from the corpus."""
    url = urlsplit(pool_url)
    assert url.hostname is not None and url.port is not None
    signer = sender.signer
    token = current_authentication_token(int(time.time()), AUTHENTICATION_TOKEN_TIMEOUT)
    results: list[AttackResult] = []
    async with aiohttp.ClientSession() as session:
        meter = NodeCallMeter(session, pool_url)
        await meter.calibrate()
        for attack in [None, *attacks(options.scale, options.keys)]:
            name = "no attack" if attack is None else attack.name
            chunk = partials(round(options.honest_rate * options.seconds), f"attack phase, {name}")
            if not chunk:
                break
            before = await meter.read()
            started = time.perf_counter()
            attacker = None
            if attack is not None:
                spec = AttackSpec(
                    kind=attack.kind,
                    host=url.hostname,
                    port=url.port,
                    addresses=attack.addresses,
                    rate=attack.rate,
                    requests=attack_requests(attack, corpus, signer, token),
                    sockets=attack.sockets,
                )
                progress(f"attack phase: {name}: starting the attacker")
                attacker = await AttackProcess.start(
                    spec, run_dir / f"attack-{attack.key}.json", run_dir / f"attack-{attack.key}.log"
                )
                await asyncio.sleep(WARM_UP_SECONDS if attack.kind == "http" else SOCKETS_HELD_SHARE * options.seconds)
            try:
                progress(f"attack phase: {name}: {len(chunk)} honest partials at {options.honest_rate:.0f}/s")
                honest = await sender.open_loop(chunk, options.honest_rate)
            finally:
                report = None if attacker is None else await attacker.stop()
            after = await meter.read()
            result = AttackResult(
                key="none" if attack is None else attack.key,
                name=name,
                rate=None if attack is None or attack.kind != "http" else attack.rate,
                addresses=0 if attack is None else len(attack.addresses),
                sockets=None if attack is None or attack.kind != "sockets" else attack.sockets,
                honest=honest,
                honest_planned=len(chunk),
                report=report,
                node_calls=meter.spent(before, after),
                seconds=time.perf_counter() - started,
            )
            progress(
                f"attack phase: {name}: honest {honest.accepted}/{honest.sent} accepted "
                f"({dict(honest.counts)}, p99 {_p99(honest.latencies_ms + honest.refused_latencies_ms):.1f} ms); "
                + ("" if report is None else f"attack sent {report.sent}, answers {dict(report.answers)}; ")
                + f"node calls {sum(result.node_calls.values())}"
            )
            results.append(result)
    return results


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)] if ordered else math.nan
