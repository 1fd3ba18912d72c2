"""Typed pool configuration, loaded from YAML and validated key by key.

Every problem is reported as a ``ConfigError`` naming the dotted key (``pool.fee``) and what is wrong with it, so an
operator never has to read a traceback to fix a typo.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from pool.chia_adapter import bytes32, decode_puzzle_hash, encode_puzzle_hash, program_from_hex

T = TypeVar("T")

MAINNET = "mainnet"
PAYOUT_SCHEMES = ("proportional", "pplns")
STORE_BACKENDS = ("sqlite", "postgresql")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")


class ConfigError(ValueError):
    """A configuration value is missing or invalid; ``key`` is the dotted path to it."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config key '{key}': {problem}")
        self.key = key
        self.problem = problem


def address_prefix_for(network: str) -> str:
    """xch on mainnet, txch on every test network (testnet11, simulator0 ...)."""
    return "xch" if network == MAINNET else "txch"


def parse_address(address: str, network: str) -> bytes32:
    """Decode a bech32m address of ``network``; raises ValueError on anything else."""
    prefix = address_prefix_for(network)
    if not address.lower().startswith(prefix + "1"):
        raise ValueError(f"expected a {prefix}1... address for network {network}")
    try:
        return decode_puzzle_hash(address)
    except Exception as exc:  # chia's decoder raises ValueError, but also other errors on odd lengths
        raise ValueError(f"not a valid bech32m address ({exc})") from exc


@dataclass(frozen=True)
class PoolInfoConfig:
    name: str
    logo_url: str
    description: str
    welcome_message: str
    fee: Fraction  # share of every payout kept by the pool, exact (parsed from the YAML text, no float rounding)
    fee_display: str  # the fee as the operator wrote it, reported in GET /pool_info
    fee_puzzle_hash: bytes32
    target_puzzle_hash: bytes32
    relative_lock_height: int
    authentication_token_timeout: int  # minutes
    address_prefix: str = "xch"  # of the network's addresses
    # A v2 PlotNFT's pool config carries this serialized CLVM program (the pool's own data, nil by default); a v2
    # PlotNFT is a member only with exactly these bytes, and both GET /pool_info answer them.
    pool_memoization: bytes = b"\x80"
    # Pool Protocol v2 tokens (GET /v2/auth): how long one is valid, and how long after its expiry it is still
    # accepted (the farmer renews a token only once it expired; a partial sent at that moment is not lost).
    v2_token_lifetime: int = 3600  # seconds
    v2_token_grace: int = 60  # seconds

    @property
    def target_address(self) -> str:
        """The target address as the wallet names it (bech32m with the network's prefix)."""
        return encode_puzzle_hash(self.target_puzzle_hash, self.address_prefix)


DEFAULT_DIFFICULTY_MAXIMUM = 1_000_000
# A difficulty travels as the protocol's uint64 and is stored as a signed 64-bit integer (both stores): beyond this,
# GET /pool_info and the store would fail on every request instead of the configuration naming its key.
MAX_DIFFICULTY = 2**63 - 1


@dataclass(frozen=True)
class DifficultyConfig:
    minimum: int
    default: int
    number_of_partials_target: int
    time_target: int  # seconds
    put_cooldown: int  # seconds before a difficulty suggested with PUT /farmer takes effect
    maximum: int = DEFAULT_DIFFICULTY_MAXIMUM  # the highest difficulty a farmer may choose on its page

    @property
    def history_seconds(self) -> int:
        """How far back the difficulty adjustment reads partials: the last time_target, and older ones only to measure
        a silence, for which a few time_targets are plenty (the silence rule halves the difficulty step by step)."""
        return DIFFICULTY_HISTORY_TIME_TARGETS * self.time_target


DIFFICULTY_HISTORY_TIME_TARGETS = 4


DEFAULT_RETENTION_DAYS = 30  # partials.retention_days
DEFAULT_HOURLY_DAYS = 90  # partials.hourly_days


@dataclass(frozen=True)
class PartialsConfig:
    time_limit: int  # seconds from when the node saw the signage point
    confirmation_delay: int  # seconds before a pending partial is checked again and credited
    signage_point_wait: float  # seconds a partial waits for a signage point the node has not yet seen
    max_body_bytes: int
    # "credit" or "drop": what becomes of a pending partial whose signage point the node no longer knows when it is
    # re-checked (the pool fell behind, or the node restarted); such partials are marked stale either way.
    stale_partials: str = "credit"
    # Threads that check partials' BLS signatures (chia_rs releases the GIL, so they use every core); 0: on the event
    # loop. Default: the machine's CPUs.
    verify_threads: int = field(default_factory=lambda: default_verify_threads())
    # POST /partial requests being handled at once; more are refused at once with SERVER_EXCEPTION ("busy, retry").
    # Default: 128 per CPU, a fraction of a second of work per core. Partials come in bursts after each signage
    # point: a burst of a few times the pool's rate is absorbed (a refused partial's points are lost, chia's farmer
    # does not send it again), and under lasting overload a partial the pool takes is answered within a second.
    max_in_flight: int = field(default_factory=lambda: default_max_in_flight())
    # Of those, at most this many from one client address: a client flooding the pool (with its own partials or with
    # forged ones) is answered "busy" while other farmers' partials still find places. Default: an eighth.
    max_in_flight_per_address: int = field(default_factory=lambda: max(1, default_max_in_flight() // 8))
    # Days a partial (and a refusal) is kept row by row; older ones are rolled into hourly per-farmer counts and
    # deleted by the leader (python -m pool prune does it at once). Longer than anything that reads single partials:
    # the PPLNS window, the difficulty adjustment's history, the confirmation delay.
    retention_days: int = DEFAULT_RETENTION_DAYS
    # Days the hourly counts of pruned partials keep their hours; older ones are folded into one count a farmer, day
    # and outcome (ten thousand farmers' hours are some 270 000 rows a day, kept for good otherwise). At least
    # retention_days.
    hourly_days: int = DEFAULT_HOURLY_DAYS


def default_verify_threads() -> int:
    return os.cpu_count() or 1


def default_max_in_flight() -> int:
    return 128 * (os.cpu_count() or 1)


@dataclass(frozen=True)
class RpcConfig:
    host: str
    port: int
    chia_root: Path


@dataclass(frozen=True)
class ChainConfig:
    network: str
    full_node: RpcConfig
    wallet: RpcConfig
    wallet_fingerprint: int | None
    wallet_id: int
    confirmation_security_threshold: int
    more_full_nodes: tuple[RpcConfig, ...] = ()  # chain.full_nodes: asked in turn when the node in use cannot answer

    @property
    def full_nodes(self) -> tuple[RpcConfig, ...]:
        """Every full node the pool may use, ``full_node`` first."""
        return (self.full_node, *self.more_full_nodes)


@dataclass(frozen=True)
class RewardsConfig:
    collect_interval: int
    claim_fee: int  # mojos per absorb transaction
    # An absorb still in the mempool this many blocks after it was sent gets a new version with a higher fee
    # (payouts.fee_bump more, or the node's estimate if higher, at most fees.maximum), from the pool's fee share.
    fee_bump_after_blocks: int = 10


@dataclass(frozen=True)
class PayoutsConfig:
    interval: int
    scheme: str
    pplns_window: int  # seconds of points that count in the PPLNS scheme
    blockchain_fee: int  # mojos per payment transaction, taken from the pool fee when the fee covers it
    max_additions_per_transaction: int
    min_payment: int  # mojos: a smaller owed balance waits (and grows) until it reaches this
    min_distribution: int  # mojos: undistributed claim money is shared out only once it reaches this (no dust rounds)
    fee_reserve: int  # mojos of the pool's fee share kept back for blockchain fees instead of paid out
    fee_bump_after_blocks: int  # a payment still unconfirmed this many blocks after sending is re-sent with more fee
    fee_bump: int  # mojos added to a stuck payment's fee (at least chia's minimum replacement increase)
    repush_after: int = 60  # seconds a recorded payment missing from the node's mempool waits before it is pushed again


@dataclass(frozen=True)
class FeesConfig:
    """Blockchain fees of absorbs and payments: the node's fee estimate for ``target_seconds``, never less than the
    least fee configured for the transaction (``rewards.claim_fee``, ``payouts.blockchain_fee``) and never more than
    ``maximum``."""

    from_node: bool = True  # False: every transaction pays its least fee (fixed fees, as on a quiet test network)
    target_seconds: int = 300  # the confirmation time asked of the node's fee estimator
    maximum: int = (
        10_000_000_000  # mojos (0.01 XCH): no absorb or payment transaction pays more, however full the mempool
    )


@dataclass(frozen=True)
class LoopsConfig:
    peak_interval: float
    confirm_interval: float
    singleton_interval: float
    difficulty_interval: float


@dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    tls_cert: Path | None
    tls_key: Path | None
    workers: int = 1  # HTTP worker processes sharing the port (SO_REUSEPORT); one of them leads the chain loops
    # GET /status and GET /metrics answer a request with this token (Authorization: Bearer ...); without a token
    # they are closed (403), except on ``operator_listen``.
    operator_token: str | None = None
    session_lifetime: int = 8 * 3600  # seconds a farmer's page stays open without a new signed link
    # Browser sessions one farmer may have open at once (each signed GET /login opens one); the oldest go first.
    sessions_per_farmer: int = 10
    # The URL farmers join with, shown on the pool page; never taken from a request's Host header. Default: built
    # from host and port when they name one address (none shown when the pool listens on every address).
    public_url: str | None = None
    # A second listener, on a loopback address only, that serves the operator's endpoints without a token (for a
    # Prometheus on the same machine): (host, port).
    operator_listen: tuple[str, int] | None = None
    # GET / shows figures at most this many seconds old (read once for every request in that time); 0: each request.
    page_cache_seconds: float = 5.0
    # Seconds GET /metrics keeps the state it read (store aggregates, node, wallet): scrapes within it read nothing.
    metrics_cache_seconds: float = 5.0
    # A block explorer's page of a coin and of a transaction, "{id}" standing for the id in hex (no 0x): the pages
    # link reward coins and payout transactions there. None: no link.
    explorer_coin_url: str | None = None
    explorer_tx_url: str | None = None

    def join_url(self) -> str | None:
        """The pool URL farmers join with: ``public_url``, or the address the pool listens on when it names one."""
        if self.public_url is not None:
            return self.public_url
        if self.host in WILDCARD_HOSTS:
            return None
        scheme = "https" if self.tls_cert is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        default_port = 443 if scheme == "https" else 80
        return f"{scheme}://{host}" if self.port == default_port else f"{scheme}://{host}:{self.port}"


WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # listening on every address: which one farmers reach is not known


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``burst`` requests at once, refilled at ``rate`` per second."""

    rate: float
    burst: int


IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class LimitsConfig:
    """Rate limits of one pool process, in memory (they protect the process; they are not durable state).

    The defaults sit far above what an honest farmer sends (a few partials per signage point, one signage point
    every ~9.4 s on mainnet) and far below what would slow the pool for everyone else."""

    # Every request from one client address (an IPv6 client: its /ipv6_prefix), checked before the body is read.
    per_address: RateLimit = RateLimit(50.0, 250)
    # Requests signed by one farmer's authentication key (POST /partial, GET /farmer, GET /login), checked before
    # the signature; only requests whose signature verifies use it up, so nobody else can spend a farmer's allowance.
    per_launcher: RateLimit = RateLimit(10.0, 200)
    # Per farmer: partials for a signage point the pool has not cached, whose look-up reaches the node.
    signage_point_lookups: RateLimit = RateLimit(1.0, 30)
    # Failed signatures per launcher id *and* client address (owner key and authentication key counted apart): once
    # spent, that address's requests for that launcher are refused before their signature is checked. Counted per
    # address so that nobody can spend an honest farmer's budget from elsewhere; a signature that verifies from the
    # address refills it.
    failed_signatures: RateLimit = RateLimit(0.1, 20)
    # Failed signatures per client address, whichever launcher ids they name (a forger rotating launcher ids).
    failed_signatures_per_address: RateLimit = RateLimit(1.0, 100)
    # Per client address: POST and PUT /farmer requests that make the pool read the chain before their signature
    # verified (the launcher's spend, the states the PlotNFT went through); given back when the request succeeds.
    launcher_lookups: RateLimit = RateLimit(0.1, 20)
    # Per client address: walks of a singleton's spends (POST /farmer, after the owner's signature verified) that
    # ended in a refusal; given back when the farmer is registered.
    singleton_walks: RateLimit = RateLimit(0.0166667, 5)  # one a minute
    # Per client address without a partial accepted in the last hour: requests refused as forged or beyond a limit
    # (INVALID_SIGNATURE, a rate limit; "busy" only just after a failed signature). Once spent, the address is cooled
    # down: its connections are closed and new ones refused for ``cooldown`` seconds, before anything of them is read
    # (pool.http.cooldown).
    refused_requests: RateLimit = RateLimit(1.0, 10)
    cooldown: float = 60.0
    # Walks of POST and PUT /farmer running at once in the process; beyond, a request is answered "busy, retry".
    concurrent_walks: int = 4
    # An IPv6 client counts as its /ipv6_prefix network: one subscriber usually holds a /48 or a /56, so a /64
    # would give one client thousands of buckets.
    ipv6_prefix: int = 48
    # Peers whose X-Forwarded-For header names the client (a reverse proxy in front of the pool); none by default.
    trusted_proxies: tuple[IpNetwork, ...] = ()
    tracked_keys: int = 100_000  # clients (addresses, launcher ids) remembered per limit; the least recent go first
    # Seconds a connection may take to deliver a complete request head, from its opening or its previous answer
    # (an idle keep-alive connection is closed after it too): half-sent requests are not held (pool.http.connections).
    header_timeout: float = 10.0
    # Open connections of one client address (TCP peer; trusted proxies are not counted); one more is refused (503).
    connections_per_address: int = 100


@dataclass(frozen=True)
class StoreConfig:
    backend: str
    path: Path  # sqlite
    dsn: str | None = None  # postgresql: postgresql://user@host:port/db (no password)
    password_env: str | None = None  # postgresql: name of the environment variable holding the password
    password_file: Path | None = None  # postgresql: file holding the password (first line)
    min_connections: int = 1
    max_connections: int = 10

    def password(self) -> str | None:
        """The PostgreSQL password, read now from its environment variable or file (never kept in the config, so
        that printing or logging a config cannot show it). None: no password (trust, peer, or libpq's own
        PGPASSWORD / ~/.pgpass). Raises ConfigError naming the key if it cannot be read."""
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError("store.password_env", f"environment variable {self.password_env} is not set")
            return value
        if self.password_file is not None:
            try:
                lines = self.password_file.read_text().splitlines()
            except OSError as exc:
                raise ConfigError(
                    "store.password_file", f"cannot read {self.password_file}: {exc.strerror or exc}"
                ) from None
            return lines[0] if lines else ""
        return None


@dataclass(frozen=True)
class LoggingConfig:
    level: str
    file: Path | None
    format: str = "text"  # text: one readable line per record; json: one JSON object per line (LOG_FORMATS)
    access_log: bool = False  # one line per HTTP request (method, path without its query, status, time, client)


WEBHOOK_FORMATS = ("json", "discord", "slack")


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    format: str = "json"  # WEBHOOK_FORMATS: Discord wants {"content": text}, Slack {"text": text}


@dataclass(frozen=True)
class NotificationsConfig:
    """Events (blocks won, rewards and payouts, silent farmers, payout instructions changed, the books) delivered by
    the leader to the operator's webhooks and to the farmers' own."""

    operator_webhooks: tuple[WebhookConfig, ...] = ()
    # Farmers' webhooks may be http or resolve to private, loopback or link-local addresses (a test or a LAN pool):
    # otherwise they must be https to a public address, so that a farmer cannot make the pool call inside its network.
    allow_private_webhooks: bool = False
    silent_after_hours: int = 6  # a member farmer without a partial this long is reported (0: never)
    interval: float = 5.0  # seconds between delivery passes
    timeout: float = 10.0  # seconds for a webhook to answer
    retry_after: int = 10  # seconds before the first retry; doubled each time up to retry_max
    retry_max: int = 3600
    max_attempts: int = 48  # delivery passes before an event is given up (logged)


@dataclass(frozen=True)
class PoolConfig:
    pool: PoolInfoConfig
    difficulty: DifficultyConfig
    partials: PartialsConfig
    chain: ChainConfig
    rewards: RewardsConfig
    payouts: PayoutsConfig
    loops: LoopsConfig
    server: ServerConfig
    store: StoreConfig
    logging: LoggingConfig
    source: Path | None = field(default=None, compare=False)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    fees: FeesConfig = field(default_factory=FeesConfig)
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)


# An integer key's bound unless it names its own: seconds, mojos and counts go into the store's signed 64-bit
# integers, often added to a time; beyond this a bad value would fail the loops and requests that use it (an
# overflow) instead of the configuration naming it. 2**53 seconds is 285 million years, mojos 9 007 XCH.
INT_MAXIMUM = 2**53


class _Section:
    """A mapping read with type checks; every error names the full dotted key."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(path or "<root>", f"must be a mapping of keys, got {type(data).__name__}")
        self._data = data
        self._path = path

    def key(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def section(self, name: str) -> _Section:
        if name not in self._data:
            raise ConfigError(self.key(name), "missing")
        return _Section(self._data[name], self.key(name))

    def raw(self, name: str, default: Any = ...) -> Any:
        if name not in self._data or self._data[name] is None:
            if default is ...:
                raise ConfigError(self.key(name), "missing")
            return default
        return self._data[name]

    def str_(self, name: str, default: Any = ...) -> str:
        value = self.raw(name, default)
        if not isinstance(value, str):
            raise ConfigError(self.key(name), f"must be a string, got {value!r}")
        return value

    def int_(self, name: str, default: Any = ..., minimum: int | None = None, maximum: int | None = INT_MAXIMUM) -> int:
        value = self.raw(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.key(name), f"must be an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise ConfigError(self.key(name), f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ConfigError(self.key(name), f"must be at most {maximum}, got {value}")
        return value

    def bool_(self, name: str, default: Any = ...) -> bool:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), f"must be true or false, got {value!r}")
        return value

    def number(self, name: str, default: Any = ..., minimum: float | None = None) -> float:
        value = self.raw(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(self.key(name), f"must be a number, got {value!r}")
        if not math.isfinite(value):
            # YAML's .nan and .inf: a NaN passes every comparison with a bound, and neither is a time or a size.
            raise ConfigError(self.key(name), f"must be a finite number, got {value!r}")
        if minimum is not None and value < minimum:
            raise ConfigError(self.key(name), f"must be at least {minimum}, got {value}")
        return float(value)

    def path(self, name: str, base: Path, default: Any = ...) -> Path:
        return _resolve(Path(self.str_(name, default)).expanduser(), base)

    def optional_path(self, name: str, base: Path) -> Path | None:
        value = self.raw(name, None)
        if value is None or value == "":
            return None
        return self.path(name, base)

    def choice(self, name: str, choices: tuple[str, ...], default: Any = ...) -> str:
        value = self.str_(name, default)
        if value not in choices:
            raise ConfigError(self.key(name), f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def address(self, name: str, network: str) -> bytes32:
        value = self.str_(name)
        try:
            return parse_address(value, network)
        except ValueError as exc:
            raise ConfigError(self.key(name), f"{value!r} is not a valid address: {exc}") from None

    def unknown_keys(self, known: set[str]) -> None:
        for name in self._data:
            if name not in known:
                raise ConfigError(self.key(str(name)), "unknown key (typo?)")


def _resolve(path: Path, base: Path) -> Path:
    return path if path.is_absolute() else (base / path)


def _fee(section: _Section) -> tuple[Fraction, str]:
    raw = section.raw("fee")
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ConfigError(section.key("fee"), f"must be a number between 0 and 1, got {raw!r}")
    text = str(raw)
    try:
        fee = Fraction(text)  # exact: Fraction("0.01") == 1/100, unlike the float 0.01
    except (ValueError, ZeroDivisionError):
        raise ConfigError(section.key("fee"), f"must be a number between 0 and 1, got {raw!r}") from None
    if not 0 <= fee <= 1:
        raise ConfigError(section.key("fee"), f"must be between 0 and 1, got {text}")
    return fee, text


def _pool_info(s: _Section, network: str) -> PoolInfoConfig:
    fee, fee_text = _fee(s)
    s.unknown_keys(
        {
            "name",
            "logo_url",
            "description",
            "welcome_message",
            "fee",
            "fee_address",
            "target_address",
            "relative_lock_height",
            "authentication_token_timeout",
            "pool_memoization",
            "v2_token_lifetime",
            "v2_token_grace",
        }
    )
    return PoolInfoConfig(
        name=s.str_("name"),
        logo_url=s.str_("logo_url", ""),
        description=s.str_("description", ""),
        welcome_message=s.str_("welcome_message", "Welcome to the pool"),
        fee=fee,
        fee_display=fee_text,
        fee_puzzle_hash=s.address("fee_address", network),
        target_puzzle_hash=s.address("target_address", network),
        relative_lock_height=s.int_("relative_lock_height", minimum=1, maximum=1000),
        authentication_token_timeout=s.int_("authentication_token_timeout", 5, minimum=1, maximum=255),
        address_prefix=address_prefix_for(network),
        pool_memoization=_pool_memoization(s),
        v2_token_lifetime=s.int_("v2_token_lifetime", 3600, minimum=60, maximum=86400),
        v2_token_grace=s.int_("v2_token_grace", 60, minimum=0, maximum=600),
    )


def _pool_memoization(s: _Section) -> bytes:
    text = s.str_("pool_memoization", "80")
    try:
        return bytes(program_from_hex(text))
    except ValueError as exc:
        raise ConfigError(s.key("pool_memoization"), f"{text!r} is {exc}") from None


def _difficulty(s: _Section) -> DifficultyConfig:
    s.unknown_keys({"minimum", "default", "number_of_partials_target", "time_target", "put_cooldown", "maximum"})
    minimum = s.int_("minimum", minimum=1, maximum=MAX_DIFFICULTY)
    default = s.int_("default", minimum=1, maximum=MAX_DIFFICULTY)
    if default < minimum:
        raise ConfigError(s.key("default"), f"must be at least difficulty.minimum ({minimum}), got {default}")
    return DifficultyConfig(
        minimum=minimum,
        default=default,
        number_of_partials_target=s.int_("number_of_partials_target", 300, minimum=1),
        time_target=s.int_("time_target", 86400, minimum=60),
        put_cooldown=s.int_("put_cooldown", 300, minimum=0),
        maximum=s.int_("maximum", max(DEFAULT_DIFFICULTY_MAXIMUM, default), minimum=default, maximum=MAX_DIFFICULTY),
    )


def _partials(s: _Section) -> PartialsConfig:
    s.unknown_keys(
        {
            "time_limit",
            "confirmation_delay",
            "signage_point_wait",
            "max_body_bytes",
            "stale_partials",
            "verify_threads",
            "max_in_flight",
            "max_in_flight_per_address",
            "retention_days",
            "hourly_days",
        }
    )
    max_in_flight = s.int_("max_in_flight", default_max_in_flight(), minimum=1, maximum=100_000)
    retention_days = s.int_("retention_days", DEFAULT_RETENTION_DAYS, minimum=1, maximum=100 * 366)
    return PartialsConfig(
        time_limit=s.int_("time_limit", 25, minimum=1, maximum=300),
        confirmation_delay=s.int_("confirmation_delay", 30, minimum=0),
        signage_point_wait=s.number("signage_point_wait", 3.0, minimum=0),
        max_body_bytes=s.int_("max_body_bytes", 65536, minimum=4096),
        stale_partials=s.choice("stale_partials", STALE_PARTIAL_POLICIES, "credit"),
        verify_threads=s.int_("verify_threads", default_verify_threads(), minimum=0, maximum=256),
        max_in_flight=max_in_flight,
        max_in_flight_per_address=s.int_(
            "max_in_flight_per_address", max(1, max_in_flight // 8), minimum=1, maximum=max_in_flight
        ),
        retention_days=retention_days,
        # Hours exist only for partials past the retention: fewer days would fold them as they are pruned.
        hourly_days=s.int_(
            "hourly_days", max(DEFAULT_HOURLY_DAYS, retention_days), minimum=retention_days, maximum=100 * 366
        ),
    )


def _rpc(s: _Section, default_root: Path, base: Path) -> RpcConfig:
    s.unknown_keys({"host", "rpc_port", "chia_root"})
    return RpcConfig(
        host=s.str_("host", "127.0.0.1"),
        port=s.int_("rpc_port", minimum=1, maximum=65535),
        chia_root=s.path("chia_root", base, str(default_root)),
    )


def _chain(s: _Section, base: Path) -> ChainConfig:
    s.unknown_keys(
        {
            "network",
            "chia_root",
            "full_node",
            "full_nodes",
            "wallet",
            "wallet_fingerprint",
            "wallet_id",
            "confirmation_security_threshold",
        }
    )
    chia_root = s.path("chia_root", base, "~/.chia/mainnet")
    fingerprint = s.raw("wallet_fingerprint", None)
    if fingerprint is not None:
        fingerprint = s.int_("wallet_fingerprint", minimum=0)
    return ChainConfig(
        network=s.str_("network"),
        full_node=_rpc(s.section("full_node"), chia_root, base),
        wallet=_rpc(s.section("wallet"), chia_root, base),
        wallet_fingerprint=fingerprint,
        wallet_id=s.int_("wallet_id", 1, minimum=1),
        confirmation_security_threshold=s.int_("confirmation_security_threshold", 32, minimum=1),
        more_full_nodes=_more_full_nodes(s, chia_root, base),
    )


def _more_full_nodes(s: _Section, chia_root: Path, base: Path) -> tuple[RpcConfig, ...]:
    listed = s.raw("full_nodes", [])
    if not isinstance(listed, list):
        raise ConfigError(s.key("full_nodes"), f"must be a list of nodes (host, rpc_port), got {listed!r}")
    return tuple(_rpc(_Section(entry, s.key(f"full_nodes[{i}]")), chia_root, base) for i, entry in enumerate(listed))


def _rewards(s: _Section) -> RewardsConfig:
    s.unknown_keys({"collect_interval", "claim_fee", "fee_bump_after_blocks"})
    return RewardsConfig(
        collect_interval=s.int_("collect_interval", 300, minimum=1),
        claim_fee=s.int_("claim_fee", 0, minimum=0),
        fee_bump_after_blocks=s.int_("fee_bump_after_blocks", 10, minimum=1),
    )


def _payouts(s: _Section) -> PayoutsConfig:
    s.unknown_keys(
        {
            "interval",
            "scheme",
            "pplns_window",
            "blockchain_fee",
            "max_additions_per_transaction",
            "min_payment",
            "min_distribution",
            "fee_reserve",
            "fee_bump_after_blocks",
            "fee_bump",
            "repush_after",
        }
    )
    # chia's mempool replaces a transaction only for at least MEMPOOL_MIN_FEE_INCREASE (10 000 000) more fee.
    fee_bump = s.int_("fee_bump", 10_000_000, minimum=10_000_000)
    return PayoutsConfig(
        interval=s.int_("interval", 7200, minimum=1),
        scheme=s.choice("scheme", PAYOUT_SCHEMES, "proportional"),
        pplns_window=s.int_("pplns_window", 86400, minimum=60),
        blockchain_fee=s.int_("blockchain_fee", 0, minimum=0),
        max_additions_per_transaction=s.int_("max_additions_per_transaction", 400, minimum=1, maximum=2000),
        min_payment=s.int_("min_payment", 0, minimum=0),
        min_distribution=s.int_("min_distribution", 1_000_000_000, minimum=1),
        # By default the share keeps one fee bump back: with nothing kept, a stuck payment could only be re-sent
        # with a higher fee if the share happened to hold it between two rounds.
        fee_reserve=s.int_("fee_reserve", fee_bump, minimum=0),
        fee_bump_after_blocks=s.int_("fee_bump_after_blocks", 20, minimum=1),
        fee_bump=fee_bump,
        repush_after=s.int_("repush_after", 60, minimum=0),
    )


def _fees(s: _Section, rewards: RewardsConfig, payouts: PayoutsConfig) -> FeesConfig:
    s.unknown_keys({"from_node", "target_seconds", "maximum"})
    defaults = FeesConfig()
    maximum = s.int_("maximum", defaults.maximum, minimum=0)
    for key, least in (("rewards.claim_fee", rewards.claim_fee), ("payouts.blockchain_fee", payouts.blockchain_fee)):
        if maximum < least:
            raise ConfigError(s.key("maximum"), f"must be at least {key} ({least}), the least fee, got {maximum}")
    return FeesConfig(
        from_node=s.bool_("from_node", defaults.from_node),
        target_seconds=s.int_("target_seconds", defaults.target_seconds, minimum=1, maximum=86_400),
        maximum=maximum,
    )


def _loops(s: _Section) -> LoopsConfig:
    s.unknown_keys({"peak_interval", "confirm_interval", "singleton_interval", "difficulty_interval"})
    return LoopsConfig(
        peak_interval=s.number("peak_interval", 5, minimum=0.05),
        confirm_interval=s.number("confirm_interval", 5, minimum=0.05),
        singleton_interval=s.number("singleton_interval", 60, minimum=0.05),
        difficulty_interval=s.number("difficulty_interval", 60, minimum=0.05),
    )


def _server(s: _Section, base: Path) -> ServerConfig:
    s.unknown_keys(
        {
            "host",
            "port",
            "tls_cert",
            "tls_key",
            "workers",
            "operator_token",
            "session_lifetime",
            "sessions_per_farmer",
            "public_url",
            "operator_listen",
            "page_cache_seconds",
            "metrics_cache_seconds",
            "explorer_coin_url",
            "explorer_tx_url",
        }
    )
    cert, key = s.optional_path("tls_cert", base), s.optional_path("tls_key", base)
    if (cert is None) != (key is None):
        raise ConfigError(s.key("tls_cert" if cert is None else "tls_key"), "tls_cert and tls_key go together")
    for name, file in (("tls_cert", cert), ("tls_key", key)):
        if file is not None and not file.is_file():
            raise ConfigError(s.key(name), f"file not found: {file}")
    token = s.raw("operator_token", None)
    if token is not None and (not isinstance(token, str) or len(token) < 16):
        raise ConfigError(s.key("operator_token"), "must be a string of at least 16 characters (or left out)")
    public_url = s.raw("public_url", None)
    if public_url is not None and (
        not isinstance(public_url, str) or not public_url.startswith(("http://", "https://"))
    ):
        raise ConfigError(s.key("public_url"), "must be an http:// or https:// URL (or left out)")
    host, port = s.str_("host", "127.0.0.1"), s.int_("port", 8080, minimum=0, maximum=65535)
    return ServerConfig(
        host=host,
        port=port,
        tls_cert=cert,
        tls_key=key,
        workers=s.int_("workers", 1, minimum=1, maximum=256),
        operator_token=token,
        session_lifetime=s.int_("session_lifetime", 8 * 3600, minimum=60),
        sessions_per_farmer=s.int_("sessions_per_farmer", 10, minimum=1, maximum=1000),
        public_url=None if public_url is None else public_url.rstrip("/"),
        operator_listen=_operator_listen(s, port),
        page_cache_seconds=min(s.number("page_cache_seconds", 5.0, minimum=0), 300.0),
        metrics_cache_seconds=s.number("metrics_cache_seconds", 5, minimum=0),
        explorer_coin_url=_url_template(s, "explorer_coin_url"),
        explorer_tx_url=_url_template(s, "explorer_tx_url"),
    )


def _url_template(s: _Section, name: str) -> str | None:
    """An http(s) URL with "{id}" once (where the pages put a coin's or transaction's id), or None when left out."""
    value = s.raw(name, None)
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not value.startswith(("http://", "https://"))
        or value.count("{id}") != 1
        or value.replace("{id}", "").count("{") + value.replace("{id}", "").count("}") > 0
        or any(c.isspace() for c in value)
    ):
        raise ConfigError(
            s.key(name), 'must be an http:// or https:// URL with "{id}" once where the id goes (or left out)'
        )
    return value


def _operator_listen(s: _Section, port: int) -> tuple[str, int] | None:
    """``host:port`` of the operator's listener: a loopback address (its endpoints answer there without a token,
    so it must not be reachable from elsewhere) and another port than the farmers'."""
    value = s.raw("operator_listen", None)
    if value is None:
        return None
    text = str(value)
    host, _, port_text = text.rpartition(":")
    host = host.strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        listen_port = int(port_text)
    except ValueError:
        raise ConfigError(s.key("operator_listen"), f"must be host:port, e.g. 127.0.0.1:9090, got {text!r}") from None
    if not loopback:
        raise ConfigError(
            s.key("operator_listen"),
            f"must be a loopback address (127.0.0.1, ::1): its endpoints need no token there, got {host!r}",
        )
    if not 1 <= listen_port <= 65535 or listen_port == port:
        raise ConfigError(s.key("operator_listen"), f"needs a port of its own (1..65535, not server.port), got {text}")
    return host, listen_port


def _rate_limit(s: _Section, default: RateLimit) -> RateLimit:
    s.unknown_keys({"rate", "burst"})
    return RateLimit(
        rate=s.number("rate", default.rate, minimum=0.001),
        burst=s.int_("burst", default.burst, minimum=1),
    )


def _trusted_proxies(s: _Section) -> tuple[IpNetwork, ...]:
    entries = s.raw("trusted_proxies", [])
    if not isinstance(entries, list):
        raise ConfigError(s.key("trusted_proxies"), "must be a list of addresses or networks (CIDR), e.g. [127.0.0.1]")
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(str(entry), strict=False))
        except ValueError:
            raise ConfigError(s.key("trusted_proxies"), f"{entry!r} is not an IP address or network (CIDR)") from None
    return tuple(networks)


RATE_LIMITS = (
    "per_address",
    "per_launcher",
    "signage_point_lookups",
    "failed_signatures",
    "failed_signatures_per_address",
    "launcher_lookups",
    "singleton_walks",
    "refused_requests",
)


def _limits(s: _Section) -> LimitsConfig:
    s.unknown_keys(
        {
            *RATE_LIMITS,
            "concurrent_walks",
            "ipv6_prefix",
            "trusted_proxies",
            "tracked_keys",
            "header_timeout",
            "connections_per_address",
            "cooldown",
        }
    )
    defaults = LimitsConfig()
    rate_limits = {name: _rate_limit(_optional_section(s, name), getattr(defaults, name)) for name in RATE_LIMITS}
    return LimitsConfig(
        **rate_limits,
        concurrent_walks=s.int_("concurrent_walks", defaults.concurrent_walks, minimum=1, maximum=1000),
        ipv6_prefix=s.int_("ipv6_prefix", defaults.ipv6_prefix, minimum=16, maximum=128),
        trusted_proxies=_trusted_proxies(s),
        tracked_keys=s.int_("tracked_keys", defaults.tracked_keys, minimum=100),
        header_timeout=s.number("header_timeout", defaults.header_timeout, minimum=0.1),
        connections_per_address=s.int_(
            "connections_per_address", defaults.connections_per_address, minimum=1, maximum=1_000_000
        ),
        cooldown=s.number("cooldown", defaults.cooldown, minimum=0.1),
    )


def _store(s: _Section, base: Path) -> StoreConfig:
    s.unknown_keys({"backend", "path", "dsn", "password_env", "password_file", "min_connections", "max_connections"})
    backend = s.choice("backend", STORE_BACKENDS, "sqlite")
    path = s.path("path", base, "pool.sqlite")
    if backend == "sqlite":
        for name in ("dsn", "password_env", "password_file"):
            if s.raw(name, None) is not None:
                raise ConfigError(s.key(name), "only for store.backend: postgresql")
        return StoreConfig(backend=backend, path=path)
    dsn = s.str_("dsn")
    if not dsn.startswith(("postgresql://", "postgres://")):
        raise ConfigError(s.key("dsn"), "must be a URL postgresql://user@host:port/database")
    try:
        parsed = urlsplit(dsn)
        has_password = parsed.password is not None
    except ValueError as exc:
        raise ConfigError(s.key("dsn"), f"is not a valid URL: {exc}") from None
    if has_password or "password=" in parsed.query:
        # Not repeated in the message: the point is that it must not be printed.
        raise ConfigError(
            s.key("dsn"), "must not contain a password: put it in store.password_env or store.password_file"
        )
    password_env = s.raw("password_env", None)
    if password_env is not None:
        password_env = s.str_("password_env")
        if password_env not in os.environ:
            raise ConfigError(s.key("password_env"), f"environment variable {password_env} is not set")
    password_file = s.optional_path("password_file", base)
    if password_env is not None and password_file is not None:
        raise ConfigError(s.key("password_file"), "give store.password_env or store.password_file, not both")
    if password_file is not None and not password_file.is_file():
        raise ConfigError(s.key("password_file"), f"file not found: {password_file}")
    min_connections = s.int_("min_connections", 1, minimum=1)
    max_connections = s.int_("max_connections", 10, minimum=1)
    if max_connections < min_connections:
        raise ConfigError(
            s.key("max_connections"),
            f"must be at least store.min_connections ({min_connections}), got {max_connections}",
        )
    return StoreConfig(
        backend=backend,
        path=path,
        dsn=dsn,
        password_env=password_env,
        password_file=password_file,
        min_connections=min_connections,
        max_connections=max_connections,
    )


def parse_store_section(data: Any, base_dir: Path) -> StoreConfig:
    """A ``store`` section on its own (the migrate-store command's target)."""
    return _store(_Section(data, "store"), base_dir)


def _logging(s: _Section, base: Path) -> LoggingConfig:
    s.unknown_keys({"level", "file", "format", "access_log"})
    level = s.str_("level", "INFO").upper()
    if level not in LOG_LEVELS:
        raise ConfigError(s.key("level"), f"must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return LoggingConfig(
        level=level,
        file=s.optional_path("file", base),
        format=s.choice("format", LOG_FORMATS, "text"),
        access_log=s.bool_("access_log", False),
    )


def _optional_section(root: _Section, name: str) -> _Section:
    return root.section(name) if root.raw(name, None) is not None else _Section({}, name)


STALE_PARTIAL_POLICIES = ("credit", "drop")


def parse_config(data: Any, base_dir: Path, source: Path | None = None) -> PoolConfig:
    """Validate a parsed YAML document; relative paths are taken from ``base_dir``."""
    root = _Section(data, "")
    root.unknown_keys(
        {
            "pool",
            "difficulty",
            "partials",
            "chain",
            "rewards",
            "payouts",
            "loops",
            "server",
            "store",
            "logging",
            "limits",
            "fees",
            "notifications",
        }
    )
    chain = _chain(root.section("chain"), base_dir)
    section: Callable[[str], _Section] = lambda name: _optional_section(root, name)  # noqa: E731
    pool = _pool_info(root.section("pool"), chain.network)
    if pool.relative_lock_height < chain.confirmation_security_threshold:
        # The pool trusts a singleton state only that many blocks deep; a farmer could leave (escape the waiting
        # room) before the pool sees it leaving, and keep earning points and rewards meanwhile.
        raise ConfigError(
            "pool.relative_lock_height",
            f"must be at least chain.confirmation_security_threshold ({chain.confirmation_security_threshold}), "
            f"got {pool.relative_lock_height}: a farmer could leave before the pool sees it leaving",
        )
    rewards, payouts = _rewards(section("rewards")), _payouts(section("payouts"))
    difficulty, partials = _difficulty(root.section("difficulty")), _partials(section("partials"))
    _check_retention(partials, difficulty, payouts)
    return PoolConfig(
        pool=pool,
        difficulty=difficulty,
        partials=partials,
        chain=chain,
        rewards=rewards,
        payouts=payouts,
        fees=_fees(section("fees"), rewards, payouts),
        loops=_loops(section("loops")),
        server=_server(section("server"), base_dir),
        store=_store(section("store"), base_dir),
        logging=_logging(section("logging"), base_dir),
        source=source,
        limits=_limits(section("limits")),
        notifications=_notifications(section("notifications")),
    )


def _check_retention(partials: PartialsConfig, difficulty: DifficultyConfig, payouts: PayoutsConfig) -> None:
    """Partials older than the retention exist only as hourly counts: whatever reads them one by one must look back
    less far, or it would silently see fewer (PPLNS shares, difficulty adjustments, credits)."""
    retention = partials.retention_days * DAY_SECONDS
    readers = (
        ("payouts.pplns_window", payouts.pplns_window),
        (
            f"difficulty.time_target ({DIFFICULTY_HISTORY_TIME_TARGETS} of which the difficulty adjustment reads)",
            difficulty.history_seconds,
        ),
        ("partials.confirmation_delay", partials.confirmation_delay),
    )
    for name, seconds in readers:
        if retention <= seconds:
            raise ConfigError(
                "partials.retention_days",
                f"must keep partials longer than {name}: {seconds} s, got {partials.retention_days} days "
                f"({retention} s); older partials are only counted per hour",
            )


DAY_SECONDS = 86400


def _notifications(s: _Section) -> NotificationsConfig:
    s.unknown_keys(
        {
            "operator_webhooks",
            "allow_private_webhooks",
            "silent_after_hours",
            "interval",
            "timeout",
            "retry_after",
            "retry_max",
            "max_attempts",
        }
    )
    defaults = NotificationsConfig()
    hooks = s.raw("operator_webhooks", [])
    if not isinstance(hooks, list):
        raise ConfigError(s.key("operator_webhooks"), "must be a list of URLs or of {url, format} mappings")
    # Bounded so that a retry's time and a silence's cutoff stay within the store's 64-bit integers: past them every
    # delivery pass would fail on its own write (and try the webhooks again at once).
    retry_after = s.int_("retry_after", defaults.retry_after, minimum=1, maximum=DAY_SECONDS)
    return NotificationsConfig(
        operator_webhooks=tuple(_webhook(hook, f"{s.key('operator_webhooks')}[{n}]") for n, hook in enumerate(hooks)),
        allow_private_webhooks=s.bool_("allow_private_webhooks", defaults.allow_private_webhooks),
        silent_after_hours=s.int_("silent_after_hours", defaults.silent_after_hours, minimum=0, maximum=24 * 366),
        interval=s.number("interval", defaults.interval, minimum=0.05),
        timeout=s.number("timeout", defaults.timeout, minimum=0.1),
        retry_after=retry_after,
        retry_max=s.int_("retry_max", defaults.retry_max, minimum=retry_after, maximum=30 * DAY_SECONDS),
        max_attempts=s.int_("max_attempts", defaults.max_attempts, minimum=1),
    )


def _webhook(value: Any, path: str) -> WebhookConfig:
    entry = _Section({"url": value} if isinstance(value, str) else value, path)
    entry.unknown_keys({"url", "format"})
    url = entry.str_("url")
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise ConfigError(entry.key("url"), f"must be an http(s) URL, got {url!r}")
    return WebhookConfig(url=url, format=entry.choice("format", WEBHOOK_FORMATS, "json"))


def load_config_file(path: Path) -> PoolConfig:
    """Read and validate a YAML config file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError("<file>", f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("<file>", f"{path} is not valid YAML: {exc}") from None
    return parse_config(data, path.resolve().parent, source=path)
