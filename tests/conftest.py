"""What the whole suite shares: one simulated chain for the session, and the test groups (markers).

The chain: the session-scoped ``world`` fixture is one devnet World (node, pool wallet, farmer wallet), started once
and shared by every test that asks for ``world``. Tests on it never depend on absolute heights or on what other modules
did on the chain: each module creates its own PlotNFTs, plots and pool database. A module that needs a chain of its
own overrides ``world`` with a module-scoped fixture, marks itself ``slow``, and says why in a comment.

All async tests and fixtures run in one session-wide event loop (``asyncio_default_*_loop_scope = "session"`` in
pyproject.toml): the chia services of the shared World live in that loop.

Markers, applied here so that no test has to remember them:
- ``chain``: needs a simulated chain (asks for ``world`` or ``devnet``, or lives in tests/e2e).
- ``e2e``: the whole pool with a real chia farmer (tests/e2e).
- ``slow``: starts a chain of its own (tests/e2e, or marked so by its module).
``make test-fast`` runs ``-m "not chain"``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from pool.devnet.postgres import memory_directory
from pool.devnet.world import World

TESTS = Path(__file__).resolve().parent
CHAIN_FIXTURES = frozenset({"world", "devnet"})


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """The shared simulated chain; started by the first test that asks for it, stopped at the end of the session."""
    async with World.create(work_dir=tmp_path_factory.mktemp("shared-world")) as started:
        yield started


def pytest_configure(config: pytest.Config) -> None:
    temporary_files_in_memory(config)
    # pytest-xdist (3.6 and later) hands out modules by their number of tests, most first, unless told not to: that
    # would undo the order below and start the longest modules, which have one or a few tests each, last.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def temporary_files_in_memory(config: pytest.Config) -> None:
    """``tmp_path`` and the like in /dev/shm where it has room (pytest's numbered folders there, the last three runs
    kept as usual): the pool stores' SQLite files sync every commit and the chains' databases write all along; on a
    disk other processes write to, each sync waits behind their writes (the SQLite store contract took 2.5 times as
    long). A ``--basetemp`` or PYTEST_DEBUG_TEMPROOT given is kept; pytest-xdist's workers get their folders from
    the controlling process."""
    if config.option.basetemp or "PYTEST_DEBUG_TEMPROOT" in os.environ:
        return
    memory = memory_directory()
    if memory is not None:
        os.environ["PYTEST_DEBUG_TEMPROOT"] = str(memory)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        folder = item.path.resolve().relative_to(TESTS).parts[0]
        if folder == "e2e":
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.chain)
        elif CHAIN_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.chain)
    # Whole modules, the longest first (make test runs `pytest -n 2 --dist loadfile`: a worker takes the next module
    # when it has two tests or fewer left): a long module started last would leave the other worker idle, while the
    # many short ones at the end fill the gaps.
    rank: dict[Path, int] = {}
    for item in items:
        rank[item.path] = min(rank.get(item.path, len(LONG_MODULES) + len(LATER)), module_rank(item))
    items.sort(key=lambda item: rank[item.path])


# The modules measured at 20 s or more on a busy machine (docs/testing.md), longest first, except the first two: the
# benchmark smoke tests build their corpus on the shared chain in the state a fresh session's chain is in, so that
# their PlotNFT's plots come from the plot cache instead of being plotted (10-20 s each); first, each is the first
# module on its worker's chain.
LONG_MODULES = (
    "bench/test_bench_scale_smoke.py",
    "bench/test_bench_smoke.py",
    "e2e/test_chaos_e2e.py",
    "e2e/test_workers_e2e.py",
    "e2e/test_v2_e2e.py",
    "store/test_ledger_state_machine_postgres.py",
    "e2e/test_devnet_e2e.py",
    "http/test_hostile_requests.py",
    "e2e/test_demo_cli.py",
    "payouts/test_ledger_on_chain.py",
    "e2e/test_pages_browser.py",
    "store/test_ledger_state_machine.py",
    "payouts/test_fund_fees_cli.py",
    "loops/test_loops_on_chain.py",
    "config/test_cli.py",
    "devnet/test_world.py",
    "payouts/test_large_round.py",
    "store/test_store_contract.py",
    "loops/test_membership_on_chain.py",
    "loops/test_notifications_crash.py",
    "loops/test_plotnft_v2_on_chain.py",
    "http/test_http_v2.py",
    "http/test_reload_process.py",
    "http/test_farmer_request_costs.py",
    "config/test_workers_cli.py",
    "loops/test_claims_on_chain.py",
    "store/test_migrate_store.py",
    "monitoring/test_metrics_multiprocess.py",
    "loops/test_singleton_costs.py",
    "store/test_leader.py",
)
# Then any other module: those with a chain of their own, those on the shared chain, and the rest.
LATER = ("slow", "chain")


def module_rank(item: pytest.Item) -> int:
    module = item.path.resolve().relative_to(TESTS).as_posix()
    if module in LONG_MODULES:
        return LONG_MODULES.index(module)
    for index, marker in enumerate(LATER):
        if item.get_closest_marker(marker):
            return len(LONG_MODULES) + index
    return len(LONG_MODULES) + len(LATER)
