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


def write_config(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load((REPO / "config.yaml").read_text())
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


def test_check_config_accepts_the_example() -> None:
    result = run_pool("--config", "config.yaml", "--check-config")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_missing_chia_root_is_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, chain__chia_root=str(tmp_path / "no-chia-here"))
    result = run_pool("--config", str(config))
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "chia_root" in lines[0]
    assert "Traceback" not in result.stderr


def test_unreachable_node_is_one_line(tmp_path: Path) -> None:
    from pool.chia_adapter.simulation import chia_init

    root = tmp_path / "chia-root"
    chia_init(root, should_check_keys=False)  # config.yaml and certificates, as `chia init` makes them
    port = free_port()  # nothing listens here
    config = write_config(tmp_path, chain__chia_root=str(root), chain__full_node__rpc_port=port)
    result = run_pool("--config", str(config))
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"full node at 127.0.0.1:{port}" in lines[0]
    assert "Traceback" not in result.stderr
