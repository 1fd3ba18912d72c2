"""The command line as an operator meets it: help, bad config, nothing to connect to. Run as real subprocesses."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def run_pool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pool", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Addresses of our own in place of config.yaml's examples (which belong to nobody, and which the pool refuses).
def own_address(seed: bytes) -> str:
    from pool.chia_adapter import encode_puzzle_hash, std_hash

    return encode_puzzle_hash(std_hash(seed), "xch")


def write_config(tmp_path: Path, *, example_addresses: bool = False, **changes: object) -> Path:
    data = yaml.safe_load((REPO / "config.yaml").read_text())
    if not example_addresses:
        data["pool"]["target_address"] = own_address(b"our target")
        data["pool"]["fee_address"] = own_address(b"our fee address")
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for key in parents:
            node = node[key]
        node[last] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_help_explains_every_option() -> None:
    result = run_pool("--help")
    assert result.returncode == 0
    for option in ("--config", "--check-config", "--log-level", "--version"):
        assert option in result.stdout


def test_bad_address_names_the_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, pool__target_address="xch1garbage")
    result = run_pool("--config", str(config))
    assert result.returncode == 2
    assert "pool.target_address" in result.stderr
    assert "Traceback" not in result.stderr


def chia_root(tmp_path: Path) -> Path:
    from pool.chia_adapter.simulation import chia_init

    root = tmp_path / "chia-root"
    chia_init(root, should_check_keys=False)  # config.yaml and certificates, as `chia init` makes them
    return root


def test_check_config_refuses_the_example_addresses_naming_both_keys() -> None:
    """config.yaml's addresses belong to nobody: on mainnet, rewards absorbed there would be lost for good."""
    result = run_pool("--config", "config.yaml", "--check-config")
    assert result.returncode == 2, result.stdout
    assert "'pool.target_address': is config.yaml's example address" in result.stderr
    assert "'pool.fee_address': is config.yaml's example address" in result.stderr
    assert "OK" not in result.stdout and "Traceback" not in result.stderr


def test_check_config_accepts_a_pool_of_its_own(tmp_path: Path) -> None:
    config = write_config(tmp_path, chain__chia_root=str(chia_root(tmp_path)))
    result = run_pool("--config", str(config), "--check-config")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_a_fee_address_that_is_the_target_address_is_refused(tmp_path: Path) -> None:
    target = own_address(b"our target")
    config = write_config(tmp_path, chain__chia_root=str(chia_root(tmp_path)), pool__fee_address=target)
    for args in (["--check-config"], []):
        result = run_pool("--config", str(config), *args)
        assert result.returncode == 2, result.stdout
        assert "'pool.fee_address': is pool.target_address" in result.stderr


def test_missing_chia_root_is_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, chain__chia_root=str(tmp_path / "no-chia-here"))
    for args in (["--check-config"], []):
        result = run_pool("--config", str(config), *args)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr  # the node's and the wallet's root are the same: said once
        assert "'chain.full_node.chia_root'" in lines[0] and "no-chia-here" in lines[0]
        assert "Traceback" not in result.stderr


def test_missing_rpc_certificates_are_named(tmp_path: Path) -> None:
    root = chia_root(tmp_path)
    (root / "config" / "ssl" / "daemon" / "private_daemon.key").unlink()
    config = write_config(tmp_path, chain__chia_root=str(root))
    result = run_pool("--config", str(config), "--check-config")
    assert result.returncode == 2
    assert "private_daemon.key" in result.stderr and "'chain.full_node.chia_root'" in result.stderr


def test_unreachable_node_is_one_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here
    config = write_config(tmp_path, chain__chia_root=str(chia_root(tmp_path)), chain__full_node__rpc_port=port)
    result = run_pool("--config", str(config))
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"full node at 127.0.0.1:{port}" in lines[0]
    assert "Traceback" not in result.stderr


def test_mainnet_needs_an_https_public_url(tmp_path: Path) -> None:
    """The join link never comes from a request's Host header: on mainnet the operator must say it."""
    root = str(chia_root(tmp_path))
    for url, words in ((None, "is required on mainnet"), ("http://pool.example.com", "must be an https:// URL")):
        config = write_config(tmp_path, chain__chia_root=root, server__public_url=url)
        result = run_pool("--config", str(config), "--check-config")
        assert result.returncode == 2, result.stdout
        assert f"'server.public_url': {words}" in result.stderr
