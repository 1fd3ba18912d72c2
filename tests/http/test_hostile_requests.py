"""Hostile input: at least 10 000 generated requests to a running pool on the session's chain.

Hypothesis generates requests of every shape: random methods, paths, query strings (huge integers, bad percent
escapes, junk hex), headers (compression that is not, forwarded-for junk, cookies), bodies (binary, not UTF-8, JSON
nested 100 000 deep, numbers of thousands of digits, random JSON, oversized) and, most of all, the farmer's real
signed requests (POST /partial, POST and PUT /farmer, GET /farmer, GET /login) with one part changed. A few go
through a raw socket to reach the HTTP parser with what no client library sends (broken request lines, chunked
encodings, Content-Length lies, overlong headers).

For every request: no 5xx; on a protocol endpoint HTTP 200 with a protocol reply (an error with a short one-line
message); at most one log line, never a traceback. After all of them: the store is byte for byte what it was.

What "no change in the store" means here: the changed requests are built so that none is a valid request (one that
still parses to the signed original is not sent: it would be accepted). So every request must fail a check that
writes nothing: parsing, the token, the farmer's existence, or the signature. A partial whose signature checks out
and is then refused is recorded as a refusal on the farmer's chart (it is the farmer's own); such a partial cannot be
made without the farmer's keys, so none appears here, and any refusal row would be a failure.

The pool runs with the rate limits raised (every request comes from 127.0.0.1; what the limits refuse is tested in
tests/http/test_rate_limits.py) and with 127.0.0.1 as a trusted proxy, so that the X-Forwarded-For junk is parsed.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import json
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from pool.chia_adapter import (
    G2Element,
    PostPartialRequest,
    PutFarmerRequest,
    bytes32,
)
from pool.config import RateLimit
from pool.devnet.world import World
from pool.http.guard import PROTOCOL_PATHS
from pool.protocol.encoding import (
    parse_bytes32,
    parse_g2,
    parse_uint64,
    query_value,
    streamable_from_json,
)
from pool.protocol.errors import MESSAGE_LIMIT, PoolProtocolError
from pool.protocol.farmers import ClassicPutFarmerPayload
from tests.http.farmer_requests import (
    PoolUnderTest,
    authenticated_params,
    partial_body,
    post_farmer_body,
    put_farmer_body,
    shared_farmer,
)
from tests.http.test_http_partial import fresh_proofs

EXAMPLES = 10_400  # a few draw a request that is still the valid original: not sent
MAX_BODY = 16_384
HIGH_LIMIT = RateLimit(rate=1_000_000.0, burst=1_000_000)
WATCHED_LOGGERS = ("pool", "aiohttp", "asyncio")


# ---------------------------------------------------------------------------------------------------- the pool


@pytest_asyncio.fixture(scope="module")
async def pool(world: World, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PoolUnderTest]:
    started = await PoolUnderTest.start(
        world,
        tmp_path_factory.mktemp("hostile") / "pool.sqlite",
        partials={"max_body_bytes": MAX_BODY, "signage_point_wait": 0.5},
        limits={
            "per_address": HIGH_LIMIT,
            "per_launcher": HIGH_LIMIT,
            "signage_point_lookups": HIGH_LIMIT,
            "trusted_proxies": (ipaddress.ip_network("127.0.0.1"),),
        },
    )
    yield started
    await started.close()


@dataclass
class Templates:
    """The farmer's real requests, signed; the fuzz changes one part of them."""

    partial: dict[str, Any]
    post_farmer: dict[str, Any]
    put_farmer: dict[str, Any]
    get_farmer: dict[str, str]
    get_login: dict[str, str]


@pytest_asyncio.fixture(scope="module")
async def templates(world: World, pool: PoolUnderTest) -> Templates:
    farmer = await shared_farmer(world, pool, "farmer one")  # the rate limit tests' farmer, in a pool of our own
    plotnft, plots, auth_sk = farmer.plotnft, farmer.plots, farmer.auth_sk
    post = post_farmer_body(plotnft, auth_sk, pool.token, "txch1" + "q" * 58)  # registered already: refused as such
    sp, found = await fresh_proofs(world, plots)
    launcher, target = plotnft.launcher_id, pool.target_puzzle_hash
    return Templates(
        partial=partial_body(launcher, pool.token, found[0], sp, auth_sk),
        post_farmer=post,
        put_farmer=put_farmer_body(launcher, plotnft.owner_secret_key, pool.token + 1, suggested_difficulty=7),
        get_farmer={
            k: str(v) for k, v in authenticated_params("get_farmer", launcher, target, auth_sk, pool.token).items()
        },
        get_login={
            k: str(v) for k, v in authenticated_params("get_login", launcher, target, auth_sk, pool.token).items()
        },
    )


# ---------------------------------------------------------------------------------------------------- requests


@dataclass
class Fuzzed:
    method: str
    path: str
    query: str = ""  # raw, already percent-encoded (or deliberately not)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    raw: bytes | None = None  # sent as it is over a socket of its own instead

    def __repr__(self) -> str:  # what hypothesis prints for a failing example: short
        shown = self.raw if self.raw is not None else self.body
        return f"Fuzzed({self.method} {self.path}?{self.query[:200]} {self.headers} {shown[:300]!r}... {len(shown)} B)"


HUGE_INTEGER = st.integers(4_000, 12_000).map(lambda digits: "9" * digits)
# A JSON number of that many digits: Python can neither make nor print such an int, so the JSON text gets it in place
# of this marker (see to_json).
HUGE_NUMBER = st.integers(4_000, 12_000).map(lambda digits: f"@@huge:{digits}@@")


def to_json(document: Any) -> bytes:
    text = json.dumps(document)
    return re.sub(r'"@@huge:(\d+)@@"', lambda match: "9" * int(match.group(1)), text).encode()


WEIRD_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "0x", "0X" + "00" * 32, "-1", "1e400", "NaN", "null", "\u0663", "0x" + "zz" * 32, "\x00"]),
    HUGE_INTEGER,
    st.integers(-(2**70), 2**70).map(str),
)
JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["0x" + "ab" * 32, "ab" * 48, "0x" + "cd" * 96, "txch1qqqq"]),
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


def _nested(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    if kind == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b'{"payload":' + b"[" * depth  # unterminated


DEEP_BODY = st.builds(_nested, st.integers(1, 100_000), st.sampled_from(["array", "object", "open"]))
HUGE_NUMBER_BODY = st.builds(
    lambda digits, where: json.dumps({"payload": {where: 0}}).replace("0", "9" * digits, 1).encode(),
    st.integers(4_000, 20_000),
    st.sampled_from(["authentication_token", "launcher_id", "suggested_difficulty"]),
)
OVERSIZED_BODY = st.integers(MAX_BODY + 1, 4 * MAX_BODY).map(lambda size: b'{"payload": "' + b"a" * size + b'"}')
NOT_UTF8_BODY = st.binary(max_size=64).map(lambda tail: b'{"payload": "\xff\xfe\xc3(' + tail + b'"}')
RANDOM_JSON_BODY = JSON_VALUE.map(lambda value: json.dumps(value).encode())
GARBAGE_BODY = st.one_of(
    st.binary(max_size=300), DEEP_BODY, HUGE_NUMBER_BODY, OVERSIZED_BODY, NOT_UTF8_BODY, RANDOM_JSON_BODY
)

METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "BREW"])
# /status and /metrics ask the node and the wallet (slow): rare.
PATHS = st.one_of(
    st.sampled_from(["/partial", "/farmer", "/pool_info", "/login", "/"] * 12 + ["/status", "/metrics"]),
    st.sampled_from(["/partial/", "//farmer", "/v2/partial", "/%ff", "/login/../farmer", "/%2e%2e/", "/pool_info%00"]),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#%"), max_size=20).map(
        lambda p: "/" + p
    ),
)
HEADER_VALUE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
HEADERS = st.dictionaries(
    st.sampled_from(
        [
            "Content-Type",
            "Content-Encoding",
            "X-Forwarded-For",
            "Cookie",
            "Authorization",
            "Accept",
            "chia-farmer-version",
            "User-Agent",
            "X-Junk",
        ]
    ),
    st.one_of(
        HEADER_VALUE,
        st.sampled_from(["gzip", "deflate", "br", "zstd", "identity, gzip", "x-unknown"]),
        st.sampled_from(
            ["application/json", "text/html", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]
        ),
        st.sampled_from(
            ["1.2.3.4", "1.2.3.4, 127.0.0.1", "::1, not-an-ip", ", ,", "300.1.1.1", "fe80::1%eth0", "a" * 60]
        ),
        st.sampled_from(["pool_session=x", 'pool_session="\\"', "a=b; pool_session=" + "z" * 50]),
    ),
    max_size=3,
)


def _query_string(params: dict[str, str]) -> str:
    return str(URL.build(query=params).raw_query_string)


RAW_QUERY = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#"), max_size=80),
    st.sampled_from(["%zz=%", "launcher_id=%ff%fe", "a&&=&==", "signature=" + "%" * 40, "x=" + "%00" * 10]),
)


@st.composite
def mutated_json(draw: st.DrawFn, template: dict[str, Any]) -> Any:
    """The template with one part replaced by a random value, or removed, or the whole thing reshaped."""
    document = json.loads(json.dumps(template))
    paths = list(_leaf_paths(document))
    path = draw(st.sampled_from(paths))
    container = document
    for name in path[:-1]:
        container = container[name]
    action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "wrap"]))
    if action == "replace":
        container[path[-1]] = draw(st.one_of(JSON_VALUE, WEIRD_TEXT, HUGE_NUMBER))
    elif action == "delete":
        del container[path[-1]]
    else:
        container[path[-1]] = [container[path[-1]]]
    if draw(st.booleans()):  # and a key no message has (chia ignores unknown keys: alone it changes nothing)
        container[draw(st.text(max_size=8))] = draw(JSON_VALUE)
    return document


def _leaf_paths(document: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, value in document.items():
        if name == "authentication_token_v2":  # not signed, and ignored for a v1 PlotNFT
            continue
        yield (*prefix, name)
        if isinstance(value, dict):
            yield from _leaf_paths(value, (*prefix, name))


@st.composite
def mutated_query(draw: st.DrawFn, template: dict[str, str]) -> str:
    params = dict(template)
    name = draw(st.sampled_from([*params, "extra"]))
    action = draw(st.sampled_from(["replace", "replace", "delete"]))
    if action == "delete":
        params.pop(name, None)
    else:
        params[name] = draw(WEIRD_TEXT)
    return _query_string(params)


def _chunked(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


RAW_REQUESTS = st.one_of(
    st.binary(min_size=1, max_size=200),
    st.sampled_from(
        [
            b"GET\r\n\r\n",
            b"GET /pool_info HTTP/9.9\r\n\r\n",
            b"GET /pool_info HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20_000 + b"\r\n\r\n",
            b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /partial HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}",
            b"POST /partial HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}",
            b"POST /partial HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
            b"POST /partial HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
            b"POST /partial HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(b"{}")[:-4],
            b"POST /partial HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\n\x1f\x8b\x00\x00",
            b"POST /farmer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + _chunked(b"\x00junk"),
            b"PUT /farmer HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
            + _chunked(gzip.compress(b"[" * 50_000)),
            b"CONNECT pool:443 HTTP/1.1\r\nHost: pool\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # a TLS client hello on the http port
        ]
    ),
).map(lambda raw: Fuzzed("RAW", "", raw=raw))


def requests_strategy(templates: Templates) -> st.SearchStrategy[Fuzzed]:
    signed_bodies = st.one_of(
        st.tuples(st.just("POST"), st.just("/partial"), mutated_json(templates.partial)),
        st.tuples(st.just("POST"), st.just("/farmer"), mutated_json(templates.post_farmer)),
        st.tuples(st.just("PUT"), st.just("/farmer"), mutated_json(templates.put_farmer)),
    ).map(lambda t: Fuzzed(t[0], t[1], body=to_json(t[2]), headers={"Content-Type": "application/json"}))
    signed_queries = st.one_of(
        st.tuples(st.just("/farmer"), mutated_query(templates.get_farmer)),
        st.tuples(st.just("/login"), mutated_query(templates.get_login)),
    ).map(lambda t: Fuzzed("GET", t[0], query=t[1]))
    anything = st.builds(
        Fuzzed,
        method=METHODS,
        path=PATHS,
        query=st.one_of(st.just(""), RAW_QUERY),
        headers=HEADERS,
        body=st.one_of(st.just(b""), GARBAGE_BODY),
    )
    gzip_junk = st.builds(
        lambda path, body: Fuzzed("POST", path, headers={"Content-Encoding": "gzip"}, body=body),
        st.sampled_from(["/partial", "/farmer"]),
        st.one_of(
            st.binary(max_size=100), st.integers(1, 50_000).map(lambda n: gzip.compress(b"[" * n, compresslevel=1))
        ),
    )
    # Raw requests (a connection each) and gzip bodies are the slowest to make and send: fewer of them.
    return st.one_of(
        signed_bodies,
        signed_bodies,
        signed_bodies,
        signed_queries,
        anything,
        anything,
        anything,
        gzip_junk,
        RAW_REQUESTS,
    )


def is_the_valid_original(request: Fuzzed, templates: Templates) -> bool:
    """Whether the change left a request that the pool would accept (and so write): such a one is not sent."""
    if request.method == "GET" and request.path == "/login":
        return _login_parameters(request.query) == _login_parameters(_query_string(templates.get_login))
    if request.path not in ("/partial", "/farmer") or request.method not in ("POST", "PUT"):
        return False
    try:
        document = json.loads(request.body)
        if request.path == "/partial":
            sent = streamable_from_json(PostPartialRequest, document)
            original = PostPartialRequest.from_json_dict(templates.partial)
            return (sent.payload.get_hash(), sent.aggregate_signature) == (
                original.payload.get_hash(),
                original.aggregate_signature,
            )
        if request.method == "PUT":
            put, original_put = (
                streamable_from_json(PutFarmerRequest, document),
                PutFarmerRequest.from_json_dict(templates.put_farmer),
            )
            return (_classic_hash(put), put.signature) == (_classic_hash(original_put), original_put.signature)
    except (ValueError, RecursionError, PoolProtocolError):
        return False
    return False


def _login_parameters(query: str) -> tuple[bytes32, int, G2Element] | None:
    """What GET /login's check reads from the query (None: it refuses the query before any check)."""
    parameters = URL("/?" + query).query
    try:
        return (
            parse_bytes32(query_value(parameters, "launcher_id"), "launcher_id"),
            parse_uint64(query_value(parameters, "authentication_token"), "authentication_token"),
            parse_g2(query_value(parameters, "signature"), "signature"),
        )
    except PoolProtocolError:
        return None


def _classic_hash(request: PutFarmerRequest) -> bytes32:
    p = request.payload
    return ClassicPutFarmerPayload(
        p.launcher_id,
        p.authentication_token,
        p.authentication_public_key,
        p.payout_instructions,
        p.suggested_difficulty,
    ).get_hash()


# ---------------------------------------------------------------------------------------------------- checks


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(WATCHED_LOGGERS) and record.name != "aiohttp.access":
            self.records.append(record)


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    loggers = [logging.getLogger(name) for name in WATCHED_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def store_snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the pool's SQLite store."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {table: sorted(db.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr) for table in tables}


async def send(pool: PoolUnderTest, request: Fuzzed) -> tuple[int, bytes]:
    if request.raw is not None:
        return await _send_raw(pool, request.raw)
    server = pool.client.server
    query = "?" + request.query if request.query else ""
    url = URL(f"http://{server.host}:{server.port}{request.path}{query}", encoded=True)
    try:
        async with pool.client.session.request(
            request.method, url, headers=request.headers, data=request.body or None, allow_redirects=False
        ) as response:
            return response.status, await response.read()
    except aiohttp.ClientResponseError as exc:  # the client could not read the answer (aiohttp answers HEAD with
        return exc.status, b""  # a body when its parser refuses the request)


async def _send_raw(pool: PoolUnderTest, raw: bytes) -> tuple[int, bytes]:
    server = pool.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(raw)
        writer.write_eof()  # nothing more comes: the server must decide on what it has, and close
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    except ConnectionError:
        return 0, b""  # the server closed the connection: an answer too
    finally:
        writer.close()
    status_line = answer.split(b"\r\n", 1)[0].split()
    return (int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0), answer


@dataclass
class Tally:
    sent: int = 0
    skipped: int = 0
    parser_refused: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


def check_answer(request: Fuzzed, status: int, body: bytes, parser_refused: bool) -> None:
    """``parser_refused``: aiohttp's HTTP parser answered 400 itself (a request line over 8 KiB, a compression it
    does not decode ...): the request never reached the pool, so no protocol answer can be given."""
    assert status < 500, (status, body[:300])
    if request.raw is not None or request.path not in PROTOCOL_PATHS or request.method == "HEAD":
        return
    if parser_refused:
        assert status == 400, (status, body[:300])
        return
    assert status == 200, (status, body[:300])
    reply = json.loads(body)
    if "error_code" in reply:
        message = reply["error_message"]
        assert len(message) <= MESSAGE_LIMIT and "\n" not in message, message
        assert "Traceback" not in message
    else:  # GET /pool_info, and GET /farmer with a change the signature does not cover (an extra parameter)
        assert request.method == "GET" and request.path in ("/pool_info", "/farmer"), reply


def check_log(new_records: list[logging.LogRecord]) -> None:
    assert len(new_records) <= 1, [r.getMessage()[:200] for r in new_records]
    for record in new_records:
        assert record.exc_info is None and record.exc_text is None, record.getMessage()[:300]
        line = record.getMessage()
        assert "\n" not in line and len(line) <= 600, line[:600]


# ---------------------------------------------------------------------------------------------------- the test


async def test_generated_hostile_requests(pool: PoolUnderTest, templates: Templates, records: Records) -> None:
    loop = asyncio.get_running_loop()
    before = store_snapshot(pool.ctx.config.store.path)
    tally = Tally()
    started = time.monotonic()

    async def one(request: Fuzzed) -> None:
        seen = len(records.records)
        status, body = await send(pool, request)
        await asyncio.sleep(0)  # let a log record of the request's end land before counting
        new_records = records.records[seen:]
        check_log(new_records)
        parser_refused = any(r.name == "aiohttp.server" and "Error handling" in r.getMessage() for r in new_records)
        tally.parser_refused += parser_refused
        check_answer(request, status, body, parser_refused)
        tally.by_status[status] = tally.by_status.get(status, 0) + 1

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(requests_strategy(templates))
    def fuzz(request: Fuzzed) -> None:
        if is_the_valid_original(request, templates):
            tally.skipped += 1
            return
        asyncio.run_coroutine_threadsafe(one(request), loop).result(timeout=60)
        tally.sent += 1

    # Hypothesis drives the requests from a thread; the pool (and the chain) keep running in this loop.
    await asyncio.to_thread(fuzz)
    elapsed = time.monotonic() - started
    print(
        f"hostile requests: {tally.sent} sent ({tally.skipped} valid originals skipped, {tally.parser_refused} "
        f"refused by the HTTP parser) in {elapsed:.1f} s; "
        f"statuses {sorted(tally.by_status.items())}"
    )

    assert store_snapshot(pool.ctx.config.store.path) == before
    assert tally.sent >= 10_000
    assert not [r for r in records.records if r.levelno >= logging.ERROR]
