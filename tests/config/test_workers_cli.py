"""server.workers as an operator meets it: workers that cannot start stop the whole pool with their reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.config.test_cli import chia_root, free_port, write_config

REPO = Path(__file__).resolve().parents[2]


def test_workers_that_cannot_start_stop_the_pool_with_their_reason(tmp_path: Path) -> None:
    """Each worker meets a node that does not answer: each says so in one line, and the supervisor stops them all."""
    port = free_port()  # nothing listens here
    config = write_config(
        tmp_path, chain__chia_root=str(chia_root(tmp_path)), chain__full_node__rpc_port=port, server__workers=2
    )
    result = subprocess.run(
        [sys.executable, "-m", "pool", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert f"full node at 127.0.0.1:{port}" in result.stderr  # each worker's own one-line reason
    assert "could not start" in result.stderr  # and the supervisor's
    # Every log line names its process's role: here the supervisor's, about the workers it starts.
    assert " supervisor pool.server: worker 1 started (pid " in result.stderr
    assert " supervisor pool.server: worker 2 started (pid " in result.stderr
    assert "Traceback" not in result.stderr


def test_workers_must_be_a_positive_count(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "config.yaml").read_text())
    data["server"]["workers"] = 0
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    result = subprocess.run(
        [sys.executable, "-m", "pool", "--config", str(config), "--check-config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "server.workers" in result.stderr
