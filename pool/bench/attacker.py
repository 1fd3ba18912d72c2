"""The attacker of the benchmark's attack phase, in a process of its own (``python -m pool.bench.attacker SPEC``).

Apart from the sender, so that its event loop, busy with up to a thousand requests a second, never delays the reading
of the honest farmers' answers (their latency is the pool's, not the bench's), and so that its CPU is counted apart.

Two kinds of attack:

- ``http``: the spec's requests (built and signed by the bench, forged: see ``pool.bench.attacks``), rotated, sent
  open-loop at ``rate`` a second, each from the next of the spec's source addresses (distinct loopback addresses, so
  that the pool's per-address limits count them apart, as they would distinct attackers); every answer is sorted by
  the protocol error it carries (and whether the pool checked the request: "not checked", "rate limit", "busy").
- ``sockets``: ``sockets`` connections opened (spread over the addresses) and each sent half a request head, then
  left; a connection the pool closes is opened again at once, so that the attack holds as many as it can all along.

Protocol on stdin/stdout: the process prints ``@attack ready`` once the attack runs (for sockets: once all were
opened the first time), runs until it reads a line on stdin (or its end), then prints ``@attack result {json}``.
"""

from __future__ import annotations

import asyncio
import json
import resource
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from pool.chia_adapter import PoolErrorCode

PREFIX = "@attack"
HALF_A_HEAD = b"POST /partial HTTP/1.1\r\nHost: pool\r\nContent-Type: application/js"
MAX_IN_FLIGHT = 4000  # requests of the attack awaiting an answer; beyond, the attacker skips (and counts) a send
DRAIN_SECONDS = 10.0  # at stop, how long answers still in flight are awaited
OPENING_AT_ONCE = 256  # connections being opened at once (the pool's listen backlog is finite)
KEEPALIVE_SECONDS = 5.0  # below the pool's header timeout (10 s), after which it closes an idle connection


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str  # with its query string
    body: str | None = None


@dataclass(frozen=True)
class AttackSpec:
    kind: str  # "http" or "sockets"
    host: str
    port: int
    addresses: tuple[str, ...]
    rate: float = 0.0  # http: requests a second
    requests: tuple[HttpRequest, ...] = ()
    sockets: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> AttackSpec:
        return cls(
            kind=document["kind"],
            host=document["host"],
            port=int(document["port"]),
            addresses=tuple(document["addresses"]),
            rate=float(document["rate"]),
            requests=tuple(HttpRequest(**request) for request in document["requests"]),
            sockets=int(document["sockets"]),
        )


@dataclass
class AttackReport:
    """What the attacker did and how the pool answered."""

    seconds: float = 0.0
    sent: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    skipped: int = 0  # http: sends skipped because MAX_IN_FLIGHT answers were awaited
    cpu_seconds: float = 0.0
    # sockets
    opened: int = 0
    held_at_stop: int = 0
    closed_by_pool: int = 0
    refused: int = 0  # answered 503 at once (the per-address cap)
    connect_errors: int = 0
    held_seconds_p50: float | None = None  # of the connections the pool closed

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["answers"] = dict(self.answers)
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> AttackReport:
        report = cls(**{key: value for key, value in document.items() if key != "answers"})
        report.answers = Counter(document["answers"])
        return report

    @property
    def sent_per_s(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def answer_name(status: int, answer: object) -> str:
    """An answer by its protocol error, and how far the pool went: "INVALID_SIGNATURE, not checked"."""
    if status != 200:
        return f"HTTP {status}"
    if not isinstance(answer, dict) or "error_code" not in answer:
        return "answered without error"
    code = answer["error_code"]
    try:
        name = PoolErrorCode(int(str(code))).name
    except ValueError:
        name = f"error {code}"
    message = str(answer.get("error_message", ""))
    for marker in ("busy", "rate limit", "not checked"):  # "busy" messages say "not checked" too
        if marker in message:
            return f"{name}, {marker}"
    return name


class HttpAttack:
    def __init__(self, spec: AttackSpec) -> None:
        self._spec = spec
        self._base = f"http://{spec.host}:{spec.port}"
        self._sessions = [
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(local_addr=(address, 0), limit=0, keepalive_timeout=KEEPALIVE_SECONDS),
                headers={"User-Agent": "chia-pool-bench attacker", "Content-Type": "application/json"},
            )
            for address in spec.addresses
        ]
        self.report = AttackReport()
        self._tasks: set[asyncio.Task[None]] = set()

    async def _one(self, number: int) -> None:
        request = self._spec.requests[number % len(self._spec.requests)]
        session = self._sessions[number % len(self._sessions)]
        try:
            async with session.request(request.method, self._base + request.path, data=request.body) as response:
                answer = await response.json(content_type=None) if response.status == 200 else None
                name = answer_name(response.status, answer)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            name = f"transport error ({type(exc).__name__})"
        self.report.answers[name] += 1

    async def run(self, stop: asyncio.Event) -> None:
        started = time.perf_counter()
        number = 0
        while not stop.is_set():
            due = int((time.perf_counter() - started) * self._spec.rate)
            while number < due:
                if len(self._tasks) >= MAX_IN_FLIGHT:
                    self.report.skipped += 1
                else:
                    task = asyncio.create_task(self._one(number))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                    self.report.sent += 1
                number += 1
            try:
                await asyncio.wait_for(stop.wait(), 0.002)
            except TimeoutError:
                pass
        self.report.seconds = time.perf_counter() - started
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=DRAIN_SECONDS)
            for task in pending:
                task.cancel()
            if pending:
                self.report.answers["unanswered at stop"] += len(pending)

    async def close(self) -> None:
        for session in self._sessions:
            await session.close()


class SocketAttack:
    def __init__(self, spec: AttackSpec) -> None:
        self._spec = spec
        self.report = AttackReport()
        self._writers: set[asyncio.StreamWriter] = set()
        self._opening = asyncio.Semaphore(OPENING_AT_ONCE)
        self._first_attempts = 0
        self._held_seconds: list[float] = []
        self.ready = asyncio.Event()  # every connection was tried once

    def _tried(self, first: bool) -> None:
        if first:
            self._first_attempts += 1
            if self._first_attempts == self._spec.sockets:
                self.ready.set()

    async def _hold(self, number: int, stop: asyncio.Event) -> None:
        """Keep one connection open, half-sent, opening it again whenever the pool closes it."""
        address = self._spec.addresses[number % len(self._spec.addresses)]
        first = True
        while not stop.is_set():
            async with self._opening:
                try:
                    reader, writer = await asyncio.open_connection(
                        self._spec.host, self._spec.port, local_addr=(address, 0)
                    )
                    writer.write(HALF_A_HEAD)
                except OSError:
                    self.report.connect_errors += 1
                    self._tried(first)
                    first = False
                    await asyncio.sleep(0.5)
                    continue
            opened = time.monotonic()
            self.report.opened += 1
            self._tried(first)
            first = False
            self._writers.add(writer)
            try:
                reading = asyncio.ensure_future(reader.read(65536))
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not reading.done():
                    reading.cancel()
                    stopping.cancel()
                    return
                stopping.cancel()
                try:
                    data = reading.result()
                except OSError:
                    data = b""
                if data.startswith(b"HTTP/1.1 503"):
                    self.report.refused += 1
                    await asyncio.sleep(0.5)  # as a patient attacker would, instead of hammering the cap
                else:
                    self.report.closed_by_pool += 1
                    self._held_seconds.append(time.monotonic() - opened)
            finally:
                self._writers.discard(writer)
                writer.close()

    async def run(self, stop: asyncio.Event) -> None:
        started = time.perf_counter()
        holders = [asyncio.create_task(self._hold(number, stop)) for number in range(self._spec.sockets)]
        await stop.wait()
        self.report.held_at_stop = len(self._writers)
        self.report.seconds = time.perf_counter() - started
        if self._held_seconds:
            self.report.held_seconds_p50 = statistics.median(self._held_seconds)
        await asyncio.gather(*holders, return_exceptions=True)


def _say(line: str) -> None:
    sys.stdout.write(f"{PREFIX} {line}\n")
    sys.stdout.flush()


async def attack(spec: AttackSpec) -> AttackReport:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def wait_for_stop() -> None:
        await reader.readline()
        stop.set()

    stopper = asyncio.create_task(wait_for_stop())
    if spec.kind == "http":
        http = HttpAttack(spec)
        _say("ready")
        try:
            await http.run(stop)
        finally:
            await http.close()
        report = http.report
    else:
        sockets = SocketAttack(spec)
        running = asyncio.create_task(sockets.run(stop))
        await asyncio.wait({asyncio.create_task(sockets.ready.wait()), running}, return_when=asyncio.FIRST_COMPLETED)
        _say("ready")
        await running
        report = sockets.report
    stopper.cancel()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report.cpu_seconds = usage.ru_utime + usage.ru_stime
    return report


def main(argv: list[str]) -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    spec = AttackSpec.from_json(json.loads(Path(argv[0]).read_text()))
    report = uvloop.run(attack(spec))
    _say("result " + json.dumps(report.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
