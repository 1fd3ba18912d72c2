"""server.workers as an operator meets it: workers that cannot start stop the whole pool with their reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_workers_that_cannot_start_stop_the_pool_with_their_reason(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "config.yaml").read_text())
    data["chain"]["chia_root"] = str(tmp_path / "no-chia-here")
    data["server"]["workers"] = 2
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    result = subprocess.run(
        [sys.executable, "-m", "pool", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert "chia_root" in result.stderr  # each worker's own one-line reason
    assert "could not start" in result.stderr  # and the supervisor's
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
