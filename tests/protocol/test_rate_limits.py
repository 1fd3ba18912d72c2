"""The rate limits' parts without a chain: token buckets, who the client is behind a proxy, the config, the budgets
of failed signatures, the senders trusted in the verifier, the shares of admission and the bound on walks."""

from __future__ import annotations

import asyncio
import copy
import ipaddress
from dataclasses import dataclass
from typing import Any, cast

import pytest
import yaml

from pool.chia_adapter import AugSchemeMPL, PoolErrorCode, PrivateKey, bytes32, std_hash
from pool.config import ConfigError, LimitsConfig, RateLimit, parse_config
from pool.http.admission import BUSY_FROM_ADDRESS, BUSY_MESSAGE, PROVEN_FOR, Admission
from pool.http.limits import client_address
from pool.protocol import verification
from pool.protocol.errors import PoolProtocolError
from pool.protocol.farmers import WALKS_BUSY, RequestWalks
from pool.protocol.rate_limits import RateLimited, RateLimits, SigningKey, TokenBuckets
from pool.protocol.signatures import TRUSTED_FOR, Sender, SignatureChecks
from pool.protocol.verification import SignatureVerifier
from tests.config.test_config import EXAMPLE, REPO


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock()
    buckets: TokenBuckets[str] = TokenBuckets(RateLimit(rate=2.0, burst=3), max_keys=10, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # the next token comes in 1 / rate seconds
    assert buckets.take("b") == 0.0  # another key has its own bucket
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    clock.now += 3600  # refills up to the burst, never beyond
    assert [buckets.take("a") for _ in range(4)].count(0.0) == 3


def test_bucket_gives_back_and_forgets_the_least_recent_keys() -> None:
    clock = FakeClock()
    buckets: TokenBuckets[int] = TokenBuckets(RateLimit(rate=0.001, burst=1), max_keys=3, clock=clock)
    assert buckets.take(1) == 0.0
    assert buckets.take(1) > 0
    buckets.give_back(1)
    assert buckets.take(1) == 0.0
    for key in range(2, 10):
        buckets.take(key)
    assert len(buckets) == 3  # bounded: a flood of new keys cannot grow the map
    assert buckets.take(1) == 0.0  # forgotten, so full again (never fewer tokens than a new client)


def test_signed_request_uses_the_allowance_only_when_the_signature_verified() -> None:
    limits = RateLimits(LimitsConfig(per_launcher=RateLimit(rate=0.001, burst=2)), clock=FakeClock())
    launcher = bytes32(std_hash(b"launcher"))
    for _ in range(10):  # someone without the farmer's keys: refused by the signature, never by the limit
        with pytest.raises(PoolProtocolError), limits.signed_request(launcher):
            raise PoolProtocolError(PoolErrorCode.INVALID_SIGNATURE, "bad signature")
    for _ in range(2):
        with limits.signed_request(launcher) as allowance:
            allowance.verified()
    with pytest.raises(RateLimited) as refused, limits.signed_request(launcher):
        pass
    assert refused.value.code is PoolErrorCode.REQUEST_FAILED
    assert launcher.hex() in refused.value.message and "retry in" in refused.value.message
    assert refused.value.retry_after >= 1


def limits_with_proxies(*networks: str) -> LimitsConfig:
    return LimitsConfig(trusted_proxies=tuple(ipaddress.ip_network(network) for network in networks))


@pytest.mark.parametrize(
    "peer, forwarded, proxies, expected",
    [
        # Not from a trusted proxy: the header is the client's own claim, ignored.
        ("203.0.113.9", ["198.51.100.1"], (), "203.0.113.9"),
        ("203.0.113.9", ["198.51.100.1"], ("10.0.0.0/8",), "203.0.113.9"),
        # From the proxy: the right-most address the proxy did not add itself.
        ("10.0.0.2", ["198.51.100.1"], ("10.0.0.0/8",), "198.51.100.1"),
        ("10.0.0.2", ["6.6.6.6, 198.51.100.1"], ("10.0.0.0/8",), "198.51.100.1"),
        ("10.0.0.2", ["6.6.6.6, 198.51.100.1, 10.0.0.7"], ("10.0.0.0/8",), "198.51.100.1"),
        ("10.0.0.2", ["6.6.6.6", "198.51.100.1"], ("10.0.0.0/8",), "198.51.100.1"),  # header given twice
        # Addresses written with the client's port, or IPv6 in brackets, by some proxies.
        ("10.0.0.2", ["198.51.100.1:5678"], ("10.0.0.0/8",), "198.51.100.1"),
        ("10.0.0.2", ["[2001:db8:1:2::9]:443"], ("10.0.0.0/8",), "2001:db8:1::/48"),
        ("10.0.0.2", ["[2001:db8:1:2::9]"], ("10.0.0.0/8",), "2001:db8:1::/48"),
        # Junk stops the walk at the last address known true.
        ("10.0.0.2", ["not-an-ip"], ("10.0.0.0/8",), "10.0.0.2"),
        ("10.0.0.2", ["198.51.100.1, junk, 10.0.0.3"], ("10.0.0.0/8",), "10.0.0.3"),
        ("10.0.0.2", [], ("10.0.0.0/8",), "10.0.0.2"),
        # IPv6 clients count by their /48 (by default); IPv4 written as IPv6 is IPv4.
        ("10.0.0.2", ["2001:db8:1:2:3:4:5:6"], ("10.0.0.0/8",), "2001:db8:1::/48"),
        ("2001:db8::1", [], (), "2001:db8::/48"),
        ("2001:db8:0:ffff::1", [], (), "2001:db8::/48"),  # another /64 of the same /48: the same client
        ("::ffff:192.0.2.1", [], (), "192.0.2.1"),
        (None, [], (), "unknown"),
    ],
)
def test_client_address(peer: str | None, forwarded: list[str], proxies: tuple[str, ...], expected: str) -> None:
    assert client_address(peer, forwarded, limits_with_proxies(*proxies)) == expected


@pytest.mark.parametrize(
    "prefix, expected",
    [(48, "2001:db8:1::/48"), (56, "2001:db8:1:200::/56"), (64, "2001:db8:1:234::/64"), (128, "2001:db8:1:234::9/128")],
)
def test_ipv6_clients_count_by_the_configured_prefix(prefix: int, expected: str) -> None:
    limits = LimitsConfig(ipv6_prefix=prefix)
    assert client_address("2001:db8:1:234::9", [], limits) == expected
    assert client_address("192.0.2.1", [], limits) == "192.0.2.1"  # IPv4: one address each


def example_with_limits(limits: Any) -> dict[str, Any]:
    data = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    data["limits"] = limits
    return dict(data)


def test_example_config_documents_the_defaults() -> None:
    parsed = parse_config(yaml.safe_load(EXAMPLE.read_text()), REPO)
    assert parsed.limits == LimitsConfig()
    without = example_with_limits(None)
    assert parse_config(without, REPO).limits == LimitsConfig()


def test_limits_config_values() -> None:
    config = parse_config(
        example_with_limits(
            {
                "per_address": {"rate": 0.5},
                "failed_signatures": {"burst": 3},
                "singleton_walks": {"rate": 0.01, "burst": 2},
                "concurrent_walks": 1,
                "ipv6_prefix": 56,
                "trusted_proxies": ["127.0.0.1", "10.0.0.0/8", "::1"],
                "tracked_keys": 500,
            }
        ),
        REPO,
    ).limits
    defaults = LimitsConfig()
    assert config.per_address == RateLimit(rate=0.5, burst=defaults.per_address.burst)
    assert config.failed_signatures == RateLimit(rate=defaults.failed_signatures.rate, burst=3)
    assert config.singleton_walks == RateLimit(rate=0.01, burst=2)
    assert config.launcher_lookups == defaults.launcher_lookups
    assert (config.concurrent_walks, config.ipv6_prefix) == (1, 56)
    assert [str(network) for network in config.trusted_proxies] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]
    assert config.tracked_keys == 500


@pytest.mark.parametrize(
    "limits, key, words",
    [
        ({"per_address": {"rate": 0}}, "limits.per_address.rate", "at least"),
        ({"per_launcher": {"burst": 0}}, "limits.per_launcher.burst", "at least 1"),
        ({"per_launcher": {"brust": 5}}, "limits.per_launcher.brust", "unknown key"),
        ({"signage_point_lookups": 5}, "limits.signage_point_lookups", "mapping"),
        ({"trusted_proxies": "127.0.0.1"}, "limits.trusted_proxies", "list"),
        ({"trusted_proxies": ["localhost"]}, "limits.trusted_proxies", "'localhost' is not an IP address"),
        ({"tracked_keys": 5}, "limits.tracked_keys", "at least 100"),
        ({"per_ip": {}}, "limits.per_ip", "unknown key"),
        ({"failed_signatures_per_address": {"rate": -1}}, "limits.failed_signatures_per_address.rate", "at least"),
        ({"launcher_lookups": {"burst": 0}}, "limits.launcher_lookups.burst", "at least 1"),
        ({"concurrent_walks": 0}, "limits.concurrent_walks", "at least 1"),
        ({"ipv6_prefix": 8}, "limits.ipv6_prefix", "at least 16"),
        ({"ipv6_prefix": 129}, "limits.ipv6_prefix", "at most 128"),
    ],
)
def test_limits_config_errors_name_the_key(limits: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(example_with_limits(limits), REPO)
    assert error.value.key == key
    assert words in error.value.problem


def test_failed_signatures_are_counted_per_launcher_and_address_and_per_address() -> None:
    limits = RateLimits(
        LimitsConfig(
            failed_signatures=RateLimit(rate=0.001, burst=2), failed_signatures_per_address=RateLimit(0.001, 5)
        ),
        clock=FakeClock(),
    )
    auth, owner = SigningKey.AUTHENTICATION, SigningKey.OWNER
    one, two = bytes32(std_hash(b"launcher one")), bytes32(std_hash(b"launcher two"))
    forger, farmer = "203.0.113.1", "198.51.100.1"
    for _ in range(2):
        limits.admit_signature_check(auth, one, forger)
        limits.signature_checked(auth, one, forger, verified=False)
    with pytest.raises(RateLimited) as refused:
        limits.admit_signature_check(auth, one, forger)
    # INVALID_SIGNATURE, so that chia's farmer sends PUT /farmer (GET /farmer answered so); the message says why.
    assert refused.value.code is PoolErrorCode.INVALID_SIGNATURE and "not checked" in refused.value.message
    limits.admit_signature_check(auth, one, farmer)  # the launcher is not locked for anyone else
    limits.admit_signature_check(auth, two, forger)  # nor another launcher for the forger (until its address budget)
    limits.admit_signature_check(owner, one, forger)  # the owner key's failures are counted apart
    limits.signature_checked(owner, one, forger, verified=True)  # the owner signed from there: both refilled
    limits.admit_signature_check(auth, one, forger)

    for launcher in (two, two, bytes32(std_hash(b"three"))):  # 5 failures of the address in all
        limits.signature_checked(auth, launcher, forger, verified=False)
    with pytest.raises(RateLimited) as refused:
        limits.admit_signature_check(auth, bytes32(std_hash(b"never named")), forger)
    assert f"failed signatures from {forger}" in refused.value.message
    limits.signature_checked(auth, one, forger, verified=True)  # a success does not refill the address's budget
    with pytest.raises(RateLimited):
        limits.admit_signature_check(auth, one, forger)
    limits.admit_signature_check(auth, one, farmer)


async def test_a_sender_is_trusted_once_its_signature_verified_from_its_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Trusted senders' checks go first in the verifier: a forger, naming a launcher id it holds no key of, never is."""
    clock = FakeClock()
    verifier = SignatureVerifier(1)
    limits = RateLimits(LimitsConfig(), clock=clock)
    checks = SignatureChecks(verifier, limits, clock=clock)
    farmer_key, forger_key = AugSchemeMPL.key_gen(b"f" * 32), AugSchemeMPL.key_gen(b"x" * 32)
    launcher, message = bytes32(std_hash(b"launcher")), std_hash(b"payload")
    farmer, forger = Sender(launcher, "198.51.100.1"), Sender(launcher, "203.0.113.1")
    try:

        async def check(sender: Sender, key: PrivateKey) -> None:
            await checks.check(
                SigningKey.AUTHENTICATION,
                sender.launcher_id,
                sender.address,
                [farmer_key.get_g1()],
                [message],
                AugSchemeMPL.sign(key, message),
                "test",
            )

        with pytest.raises(PoolProtocolError) as failed:
            await check(forger, forger_key)
        assert failed.value.code is PoolErrorCode.INVALID_SIGNATURE
        assert not checks.trusts(forger) and not checks.trusts(farmer)
        await check(farmer, farmer_key)
        assert checks.trusts(farmer) and not checks.trusts(forger)  # trust is the address's, for the launcher id
        assert not checks.trusts(Sender(bytes32(std_hash(b"other")), farmer.address))
        clock.now += TRUSTED_FOR
        assert not checks.trusts(farmer)

        # A check the verifier sheds is answered busy, unchecked: no failed signature counted against the sender.
        monkeypatch.setattr(verification, "UNTRUSTED_WAIT", -1.0)
        for _ in range(LimitsConfig().failed_signatures.burst + 1):
            with pytest.raises(PoolProtocolError) as busy:
                await check(forger, forger_key)
            assert busy.value.code is PoolErrorCode.SERVER_EXCEPTION and "not checked" in busy.value.message
        assert checks.verified == 2
    finally:
        verifier.close()


def test_admission_shares_the_places_between_addresses() -> None:
    admission = Admission(limit=4, per_address=2)
    for farmer in ("a", "b", "c", "d"):  # addresses of farmers whose partials were accepted
        admission.prove(farmer)
    admission.enter("a")
    admission.enter("a")
    with pytest.raises(PoolProtocolError) as busy:
        admission.enter("a")
    assert busy.value.code is PoolErrorCode.SERVER_EXCEPTION and busy.value.message == BUSY_FROM_ADDRESS
    admission.enter("b")
    admission.enter("c")
    with pytest.raises(PoolProtocolError) as full:
        admission.enter("d")
    assert full.value.message == BUSY_MESSAGE
    assert (admission.in_flight, admission.refused, admission.held_by("a")) == (4, 2, 2)
    for address in ("a", "a", "b", "c"):
        admission.leave(address)
    assert (admission.in_flight, admission.held_by("a")) == (0, 0)
    admission.enter("a")


def test_addresses_without_an_accepted_partial_hold_half_the_places() -> None:
    """Forged partials are never accepted: from however many addresses, they cannot take the places of a farmer whose
    partials the pool accepted in the last hour."""
    now = [1_000.0]
    admission = Admission(limit=4, per_address=4, clock=lambda: now[0])
    admission.prove("farmer")
    admission.enter("forger 1")
    admission.enter("forger 2")
    with pytest.raises(PoolProtocolError) as busy:
        admission.enter("forger 3")  # half the places are held by addresses nobody proved
    assert busy.value.message == BUSY_MESSAGE
    admission.enter("farmer")
    admission.enter("farmer")
    assert (admission.in_flight, admission.unproven_in_flight) == (4, 2)
    admission.leave("forger 1")
    admission.leave("farmer")
    assert (admission.in_flight, admission.unproven_in_flight) == (2, 1)
    now[0] += PROVEN_FOR  # an hour later the farmer's address counts as unknown again, until it is accepted again
    assert not admission.is_proven("farmer")
    admission.enter("forger 3")
    with pytest.raises(PoolProtocolError):
        admission.enter("farmer")
    for address in ("forger 2", "forger 3", "farmer"):
        admission.leave(address)
    assert (admission.in_flight, admission.unproven_in_flight) == (0, 0)


async def test_walks_at_once_are_bounded_and_shared_per_launcher() -> None:
    walks = RequestWalks(limit=1)
    release = asyncio.Event()
    result = cast(Any, ("view", 7))

    async def walk() -> Any:
        await release.wait()
        return result

    first = asyncio.ensure_future(walks.run("launcher", walk))
    joined = asyncio.ensure_future(walks.run("launcher", walk))  # the same launcher: shares the running walk
    await asyncio.sleep(0)
    with pytest.raises(PoolProtocolError) as busy:
        await walks.run("another launcher", walk)
    assert busy.value.code is PoolErrorCode.SERVER_EXCEPTION and busy.value.message == WALKS_BUSY
    release.set()
    assert await first is result and await joined is result
    assert (walks.started, walks.running) == (1, 0)
    assert await walks.run("another launcher", walk) is result
