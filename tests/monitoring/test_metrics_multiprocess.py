"""prometheus-client's multiprocess mode as the pool's workers use it: processes that share PROMETHEUS_MULTIPROC_DIR
(the supervisor's), each counting on its own, and any one of them answering a scrape for all. Real processes: the mode
is chosen when prometheus-client is first imported, so it cannot be switched on inside the test's process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client import ProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from pool.metrics import MULTIPROCESS_DIR, SUPERVISOR_PID, clear_multiprocess_dir, mark_process_dead

REPO = Path(__file__).resolve().parents[2]

# A worker: counts ``accepted`` partials and one loop run at ``ran_at``, leads if told to, and prints its pid; then
# it waits for a line on stdin (so that it is alive while the scrape is made) and exits.
WORKER = textwrap.dedent(
    """
    import sys
    from pool.metrics import PoolMetrics
    accepted, ran_at, leads = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "lead"
    metrics = PoolMetrics()
    for _ in range(accepted):
        metrics.partial_answered("accepted")
    metrics.loops_known(["peak", "payouts"])
    metrics.loop_ran("peak", 0.5, ok=True, now=ran_at)
    metrics.leading(leads)
    print(__import__("os").getpid(), flush=True)
    sys.stdin.readline()
    """
)

# Another worker answering the scrape: prints GET /metrics's exposition.
SCRAPE = "from pool.metrics import PoolMetrics; print(PoolMetrics().exposition().decode())"


def environment(directory: Path) -> dict[str, str]:
    """What the supervisor gives its workers; the test's process is their supervisor."""
    return {**os.environ, MULTIPROCESS_DIR: str(directory), SUPERVISOR_PID: str(os.getpid()), "PYTHONPATH": str(REPO)}


def own_memory() -> float:
    (family,) = [f for f in ProcessCollector(registry=None).collect() if f.name == "process_resident_memory_bytes"]
    return family.samples[0].value


def start_worker(directory: Path, accepted: int, ran_at: int, leads: bool) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(accepted), str(ran_at), "lead" if leads else "follow"],
        env=environment(directory),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def stop(process: subprocess.Popen[str]) -> None:
    process.communicate("\n", timeout=30)
    assert process.returncode == 0


def scrape(directory: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    done = subprocess.run(
        [sys.executable, "-c", SCRAPE], env=environment(directory), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    samples = {}
    for family in text_string_to_metric_families(done.stdout):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_any_worker_reports_the_sum_of_all_a_dead_one_keeps_its_counts_a_new_run_starts_at_0(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    clear_multiprocess_dir(str(directory))
    leader, leader_pid = start_worker(directory, accepted=3, ran_at=1_000, leads=True)
    follower, _ = start_worker(directory, accepted=4, ran_at=0, leads=False)
    try:
        both = scrape(directory)
        accepted = ("pool_partials_total", (("result", "accepted"),))
        assert both[accepted] == 3 + 4
        # The leader's loop time, from a process that never ran the loop; a loop not run yet shows 0.
        assert both[("pool_loop_last_success_timestamp_seconds", (("loop", "peak"),))] == 1_000
        assert both[("pool_loop_last_success_timestamp_seconds", (("loop", "payouts"),))] == 0
        assert both[("pool_is_leader", ())] == 1
        assert both[("pool_loop_duration_seconds_count", (("loop", "peak"),))] == 2
        assert any(name == "pool_build_info" for name, _ in both)
        assert both[("process_cpu_seconds_total", ())] > 0
        # The supervisor's memory and its workers' (the scraping one included), not the answering worker's alone.
        assert both[("process_resident_memory_bytes", ())] > own_memory() + 2 * 10_000_000

        # The leader dies; the supervisor marks it dead: its counts stay (a counter never goes back), it leads no more.
        stop(leader)
        mark_process_dead(leader_pid, str(directory))
        after = scrape(directory)
        assert after[accepted] == 3 + 4
        assert after[("pool_loop_last_success_timestamp_seconds", (("loop", "peak"),))] == 1_000
        assert after[("pool_is_leader", ())] == 0

        # A new run of the pool: the supervisor empties the directory when it starts, its counters start at 0.
        stop(follower)
        clear_multiprocess_dir(str(directory))
        assert scrape(directory)[accepted] == 0
    finally:
        for process in (leader, follower):
            if process.returncode is None:
                stop(process)
