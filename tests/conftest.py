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

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from pool.devnet.world import World

TESTS = Path(__file__).resolve().parent
CHAIN_FIXTURES = frozenset({"world", "devnet"})


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """The shared simulated chain; started by the first test that asks for it, stopped at the end of the session."""
    async with World.create(work_dir=tmp_path_factory.mktemp("shared-world")) as started:
        yield started


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        folder = item.path.resolve().relative_to(TESTS).parts[0]
        if folder == "e2e":
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.chain)
        elif CHAIN_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.chain)
    # The longest modules first, whole (make test runs `pytest -n`, one module per worker at a time): the end-to-end
    # ones, then those with a chain of their own; a long module started last would leave the other worker idle.
    items.sort(key=lambda item: 0 if item.get_closest_marker("e2e") else 1 if item.get_closest_marker("slow") else 2)
