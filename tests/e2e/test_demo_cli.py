"""The README's first command, as a script runs it: the demo exits 0 once a payout to the farmer is confirmed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_until_a_confirmed_payout(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pool.devnet", "--until-payout", "--timeout", "600", "--work-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("pool running at http://127.0.0.1:") for line in lines)
    assert any(line.startswith("pool page: http://127.0.0.1:") for line in lines)
    assert any(line.startswith("farmer 1 page") and "/login?launcher_id=" in line for line in lines)
    assert "payout to the farmer confirmed" in lines[-1]
    final_status = lines[-2]
    assert "farmers 1/1" in final_status and "payouts confirmed 0 " not in final_status
    # chia's own start-up chatter and logs are kept off the demo's output: only the pool's lines, no error.
    assert not any(line.startswith("Chia directory") for line in lines)
    output = result.stdout + result.stderr
    assert [line for line in output.splitlines() if "ERROR" in line or "Traceback" in line] == []
    # chia's logs went to the file named on the first line, in the work dir.
    named = re.fullmatch(r"work dir (\S+); chia's own logs \(node, wallets, farmer, harvester\) go to (\S+)", lines[0])
    assert named is not None, lines[0]
    assert Path(named[1]) == tmp_path
    chia_log = Path(named[2])
    assert chia_log.parent == tmp_path
    chia_lines = chia_log.read_text().splitlines()
    assert any(" chia." in line for line in chia_lines)
    # What the devnet used to provoke is gone, not just hidden: blocks chia's farmer tried to make failed (hard fork
    # height), and the farmer logged pool answers as errors (a partial resent, one sent before it had registered).
    provoked = ("Cannot farm blocks", "Error farming block", "Error in pooling")
    assert [line for line in chia_lines if any(text in line for text in provoked)] == []
