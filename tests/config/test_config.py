"""Config loading: the example config is valid, and every kind of mistake names its key."""

from __future__ import annotations

import copy
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from pool.chia_adapter import bytes32, encode_puzzle_hash, std_hash
from pool.config import ConfigError, RateLimit, load_config_file, parse_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config.yaml"


def example() -> dict[str, Any]:
    data = yaml.safe_load(EXAMPLE.read_text())
    assert isinstance(data, dict)
    return data


def with_change(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(example())
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return data


DELETE = object()


def test_example_config_is_valid() -> None:
    config = load_config_file(EXAMPLE)
    assert config.pool.fee == Fraction(1, 100)
    assert config.pool.fee_display == "0.01"
    assert config.chain.network == "mainnet"
    assert config.difficulty.minimum <= config.difficulty.default
    assert config.store.path.is_absolute()


def test_fee_is_exact_not_float() -> None:
    config = parse_config(with_change("pool.fee", "0.1"), REPO)
    # 0.1 as a float is 0.1000000000000000055...; the pool must keep exactly 1/10 for mojo arithmetic.
    assert config.pool.fee == Fraction(1, 10)
    assert 10**12 * config.pool.fee == 10**11


@pytest.mark.parametrize(
    "path, value, key, words",
    [
        ("pool.name", DELETE, "pool.name", "missing"),
        ("pool.fee", 1.5, "pool.fee", "between 0 and 1"),
        ("pool.fee", -0.01, "pool.fee", "between 0 and 1"),
        ("pool.fee", "lots", "pool.fee", "number"),
        ("pool.target_address", "xch1notanaddress", "pool.target_address", "not a valid address"),
        ("pool.fee_address", "0" * 64, "pool.fee_address", "not a valid address"),
        ("pool.relative_lock_height", "ten", "pool.relative_lock_height", "integer"),
        ("pool.relative_lock_height", 0, "pool.relative_lock_height", "at least 1"),
        ("difficulty.default", 1, "difficulty.default", "at least difficulty.minimum"),
        ("chain.network", DELETE, "chain.network", "missing"),
        ("chain.full_node.rpc_port", 70000, "chain.full_node.rpc_port", "at most 65535"),
        ("payouts.scheme", "lottery", "payouts.scheme", "proportional, pplns"),
        ("payouts.max_additions_per_transaction", 0, "payouts.max_additions_per_transaction", "at least 1"),
        ("server.port", True, "server.port", "integer"),
        ("server.operator_token", "short", "server.operator_token", "at least 16 characters"),
        ("server.session_lifetime", 10, "server.session_lifetime", "at least 60"),
        ("server.sessions_per_farmer", 0, "server.sessions_per_farmer", "at least 1"),
        ("limits.header_timeout", 0, "limits.header_timeout", "at least 0.1"),
        ("limits.header_timeout", "soon", "limits.header_timeout", "number"),
        ("limits.connections_per_address", 0, "limits.connections_per_address", "at least 1"),
        ("limits.cooldown", 0, "limits.cooldown", "at least 0.1"),
        ("limits.refused_requests", {"rate": 0}, "limits.refused_requests.rate", "at least"),
        ("server.public_url", "pool.example.com", "server.public_url", "http:// or https://"),
        ("server.explorer_coin_url", "https://x.example/coin/", "server.explorer_coin_url", '"{id}" once'),
        ("server.explorer_coin_url", "x.example/coin/{id}", "server.explorer_coin_url", "http:// or https://"),
        ("server.explorer_tx_url", "https://x.example/{id}/{id}", "server.explorer_tx_url", '"{id}" once'),
        ("server.explorer_tx_url", "https://x.example/{tx}/{id}", "server.explorer_tx_url", '"{id}" once'),
        ("server.explorer_tx_url", 7, "server.explorer_tx_url", "http:// or https://"),
        ("server.operator_listen", "0.0.0.0:9090", "server.operator_listen", "loopback"),
        ("server.operator_listen", "192.0.2.1:9090", "server.operator_listen", "loopback"),
        ("server.operator_listen", "9090", "server.operator_listen", "host:port"),
        ("server.operator_listen", "127.0.0.1:8080", "server.operator_listen", "port of its own"),
        ("server.operator_listen", "127.0.0.1:0", "server.operator_listen", "port of its own"),
        ("logging.level", "LOUD", "logging.level", "one of"),
        ("logging.format", "xml", "logging.format", "text, json"),
        ("logging.access_log", "yes", "logging.access_log", "true or false"),
        ("pool.feee", 0.01, "pool.feee", "unknown key"),
        ("partials.stale_partials", "keep", "partials.stale_partials", "credit, drop"),
        ("partials.verify_threads", -1, "partials.verify_threads", "at least 0"),
        ("partials.verify_threads", "all", "partials.verify_threads", "integer"),
        ("partials.max_in_flight", 0, "partials.max_in_flight", "at least 1"),
        ("partials.max_in_flight_per_address", 0, "partials.max_in_flight_per_address", "at least 1"),
        ("pool.relative_lock_height", 31, "pool.relative_lock_height", "chain.confirmation_security_threshold (32)"),
        ("fees.maximum", -1, "fees.maximum", "at least 0"),
        ("fees.from_node", "yes", "fees.from_node", "true or false"),
        ("fees.target_seconds", 0, "fees.target_seconds", "at least 1"),
        ("fees.maximum", 10, "fees.maximum", "at least payouts.blockchain_fee (20)"),
        ("fees.mximum", 10, "fees.mximum", "unknown key"),
        ("rewards.fee_bump_after_blocks", 0, "rewards.fee_bump_after_blocks", "at least 1"),
        # YAML's .nan passes every bound; either would fail every GET /api/v1 answer (its Cache-Control).
        ("server.page_cache_seconds", float("nan"), "server.page_cache_seconds", "finite number"),
        ("server.page_cache_seconds", float("inf"), "server.page_cache_seconds", "finite number"),
        ("notifications.interval", float("nan"), "notifications.interval", "finite number"),
        ("limits.header_timeout", float("inf"), "limits.header_timeout", "finite number"),
        # Bytes after the first program were dropped: the pool would ask PlotNFTs for another memoization.
        ("pool.pool_memoization", "8080", "pool.pool_memoization", "bytes follow the program"),
        # Beyond 64 bits GET /pool_info (uint64) and the store fail on every request.
        ("difficulty.minimum", 2**64, "difficulty.minimum", "at most 9223372036854775807"),
        ("difficulty.maximum", 2**63, "difficulty.maximum", "at most 9223372036854775807"),
        # A retry time or silence cutoff past the store's integers failed every delivery pass on its write.
        ("notifications.retry_after", 10**19, "notifications.retry_after", "at most 86400"),
        ("notifications.retry_max", 10**19, "notifications.retry_max", "at most 2592000"),
        ("notifications.silent_after_hours", 10**16, "notifications.silent_after_hours", "at most 8784"),
        # Any integer key: past 2**53 a time, fee or count overflows the store where it is used, not here.
        ("server.session_lifetime", 2**63, "server.session_lifetime", "at most 9007199254740992"),
        ("rewards.claim_fee", 10**19, "rewards.claim_fee", "at most 9007199254740992"),
        ("partials.retention_days", 10**15, "partials.retention_days", "at most 36600"),
    ],
)
def test_bad_values_name_their_key(path: str, value: Any, key: str, words: str) -> None:
    data = with_change(path, value)
    data["payouts"]["blockchain_fee"] = 20  # a least fee for fees.maximum to be checked against
    with pytest.raises(ConfigError) as info:
        parse_config(data, REPO)
    assert info.value.key == key
    assert words in str(info.value)


def test_partial_intake_settings() -> None:
    config = parse_config(example(), REPO)
    # Both left out of the example: one verifying thread and 128 partials in flight per CPU.
    assert config.partials.verify_threads == (os.cpu_count() or 1)
    assert config.partials.max_in_flight == 128 * (os.cpu_count() or 1)
    changed = with_change("partials.verify_threads", 0)
    changed["partials"]["max_in_flight"] = 10
    config = parse_config(changed, REPO)
    assert (config.partials.verify_threads, config.partials.max_in_flight) == (0, 10)
    # An eighth of the places for one client address, at least one, never more than all of them.
    assert config.partials.max_in_flight_per_address == 1
    assert parse_config(example(), REPO).partials.max_in_flight_per_address == 16 * (os.cpu_count() or 1)
    changed["partials"]["max_in_flight_per_address"] = 11
    with pytest.raises(ConfigError) as info:
        parse_config(changed, REPO)
    assert info.value.key == "partials.max_in_flight_per_address" and "at most 10" in info.value.problem


def test_operator_endpoints_and_pages_settings() -> None:
    config = parse_config(example(), REPO)
    assert config.server.explorer_coin_url == "https://www.spacescan.io/coin/0x{id}"
    assert config.server.explorer_tx_url is None  # left out: no link
    assert config.server.operator_token is None and config.server.operator_listen is None  # closed unless set
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8080)  # the example: behind a proxy
    assert config.server.session_lifetime == 28800
    data = with_change("server.operator_token", "s" * 20)
    data["server"]["public_url"] = "https://pool.example.com/"
    data["server"]["operator_listen"] = "[::1]:9090"
    config = parse_config(data, REPO)
    assert config.server.operator_token == "s" * 20
    assert config.server.public_url == config.server.join_url() == "https://pool.example.com"
    assert config.server.operator_listen == ("::1", 9090)
    del data["server"]["host"], data["server"]["port"]
    assert (parse_config(data, REPO).server.host, parse_config(data, REPO).server.port) == ("127.0.0.1", 8080)


@pytest.mark.parametrize(
    "server, join_url",
    [
        ({"host": "127.0.0.1", "port": 8080}, "http://127.0.0.1:8080"),
        (
            {"host": "pool.example.com", "port": 443, "tls_cert": "config.yaml", "tls_key": "config.yaml"},
            "https://pool.example.com",
        ),
        ({"host": "::1", "port": 80}, "http://[::1]"),
        ({"host": "0.0.0.0", "port": 8080}, None),  # every address: which one farmers reach is not known
        ({"host": "0.0.0.0", "public_url": "https://pool.example.com"}, "https://pool.example.com"),
    ],
)
def test_the_join_url_comes_from_the_configuration(server: dict[str, Any], join_url: str | None) -> None:
    data = example()
    data["server"] = server
    assert parse_config(data, REPO).server.join_url() == join_url


def test_sessions_per_farmer() -> None:
    assert parse_config(example(), REPO).server.sessions_per_farmer == 10
    assert parse_config(with_change("server.sessions_per_farmer", 3), REPO).server.sessions_per_farmer == 3
    assert parse_config(with_change("server.sessions_per_farmer", DELETE), REPO).server.sessions_per_farmer == 10


def test_connection_bounds() -> None:
    config = parse_config(example(), REPO)
    assert (config.limits.header_timeout, config.limits.connections_per_address) == (10.0, 100)
    data = with_change("limits.header_timeout", 2.5)
    data["limits"]["connections_per_address"] = 7
    config = parse_config(data, REPO)
    assert (config.limits.header_timeout, config.limits.connections_per_address) == (2.5, 7)
    del data["limits"]["header_timeout"], data["limits"]["connections_per_address"]
    config = parse_config(data, REPO)  # left out: the defaults
    assert (config.limits.header_timeout, config.limits.connections_per_address) == (10.0, 100)


def test_cooldown_after_refused_requests() -> None:
    config = parse_config(example(), REPO)
    assert (config.limits.refused_requests, config.limits.cooldown) == (RateLimit(1.0, 10), 60.0)
    data = with_change("limits.cooldown", 5)
    data["limits"]["refused_requests"] = {"rate": 0.5, "burst": 3}
    config = parse_config(data, REPO)
    assert (config.limits.refused_requests, config.limits.cooldown) == (RateLimit(0.5, 3), 5.0)
    del data["limits"]["refused_requests"], data["limits"]["cooldown"]
    config = parse_config(data, REPO)  # left out: the defaults
    assert (config.limits.refused_requests, config.limits.cooldown) == (RateLimit(1.0, 10), 60.0)


def test_address_of_other_network_is_refused() -> None:
    testnet_address = encode_puzzle_hash(bytes32(std_hash(b"x")), "txch")
    with pytest.raises(ConfigError) as info:
        parse_config(with_change("pool.target_address", testnet_address), REPO)
    assert info.value.key == "pool.target_address"
    assert "xch1" in info.value.problem


def test_testnet_takes_txch_addresses() -> None:
    data = with_change("chain.network", "testnet11")
    data["pool"]["target_address"] = encode_puzzle_hash(bytes32(std_hash(b"t")), "txch")
    data["pool"]["fee_address"] = encode_puzzle_hash(bytes32(std_hash(b"f")), "txch")
    config = parse_config(data, REPO)
    assert config.pool.target_puzzle_hash == std_hash(b"t")


def test_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config_file(path)


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("pool: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config_file(path)


def test_tls_files_must_exist() -> None:
    data = with_change("server.tls_cert", "/nonexistent/cert.pem")
    data["server"]["tls_key"] = "/nonexistent/key.pem"
    with pytest.raises(ConfigError) as info:
        parse_config(data, REPO)
    assert info.value.key == "server.tls_cert"


def test_stale_partials_are_credited_unless_the_operator_drops_them() -> None:
    assert load_config_file(EXAMPLE).partials.stale_partials == "credit"
    assert parse_config(with_change("partials.stale_partials", "drop"), REPO).partials.stale_partials == "drop"


def test_relative_lock_height_may_equal_the_confirmation_threshold() -> None:
    assert parse_config(with_change("pool.relative_lock_height", 32), REPO).pool.relative_lock_height == 32


def test_a_stuck_absorb_is_sent_anew_after_ten_blocks_unless_set() -> None:
    assert load_config_file(EXAMPLE).rewards.fee_bump_after_blocks == 10
    assert parse_config(with_change("rewards.fee_bump_after_blocks", DELETE), REPO).rewards.fee_bump_after_blocks == 10
    assert parse_config(with_change("rewards.fee_bump_after_blocks", 3), REPO).rewards.fee_bump_after_blocks == 3


def test_fee_reserve_keeps_one_fee_bump_unless_set() -> None:
    # A stuck payment can only be re-sent with fee_bump more fee if the pool's fee share still holds it.
    without_reserve = with_change("payouts.fee_reserve", DELETE)
    assert parse_config(without_reserve, REPO).payouts.fee_reserve == 10_000_000
    without_reserve["payouts"]["fee_bump"] = 50_000_000
    assert parse_config(without_reserve, REPO).payouts.fee_reserve == 50_000_000
    assert parse_config(with_change("payouts.fee_reserve", 0), REPO).payouts.fee_reserve == 0


def test_partials_are_kept_thirty_days_unless_set() -> None:
    assert parse_config(example(), REPO).partials.retention_days == 30
    assert parse_config(with_change("partials.retention_days", DELETE), REPO).partials.retention_days == 30
    assert parse_config(with_change("partials.retention_days", 7), REPO).partials.retention_days == 7
    with pytest.raises(ConfigError) as info:
        parse_config(with_change("partials.retention_days", 0), REPO)
    assert info.value.key == "partials.retention_days" and "at least 1" in info.value.problem


def test_hourly_counts_keep_their_hours_ninety_days_and_at_least_the_retention() -> None:
    assert parse_config(example(), REPO).partials.hourly_days == 90
    assert parse_config(with_change("partials.hourly_days", 45), REPO).partials.hourly_days == 45
    longer = with_change("partials.retention_days", 120)
    del longer["partials"]["hourly_days"]
    assert parse_config(longer, REPO).partials.hourly_days == 120  # unset: never shorter than the retention
    with pytest.raises(ConfigError) as info:
        parse_config(with_change("partials.hourly_days", 29), REPO)
    assert info.value.key == "partials.hourly_days" and "at least 30" in info.value.problem


@pytest.mark.parametrize(
    "path, seconds, reader",
    [
        ("payouts.pplns_window", 2 * 86400, "payouts.pplns_window"),
        ("difficulty.time_target", 86400, "difficulty.time_target"),  # the adjustment reads 4 of them: 4 days
        ("partials.confirmation_delay", 3 * 86400, "partials.confirmation_delay"),
    ],
)
def test_a_retention_shorter_than_a_reader_of_partials_is_refused(path: str, seconds: int, reader: str) -> None:
    data = example()
    data["payouts"]["pplns_window"] = data["difficulty"]["time_target"] = 3600  # the others read an hour or so
    section, key = path.split(".")
    data.setdefault(section, {})[key] = seconds
    data["partials"]["retention_days"] = 2
    with pytest.raises(ConfigError) as info:
        parse_config(data, REPO)
    assert info.value.key == "partials.retention_days"
    assert reader in info.value.problem and "longer than" in info.value.problem
    data["partials"]["retention_days"] = 5  # longer than each of them
    assert parse_config(data, REPO).partials.retention_days == 5
