"""The ``store`` fixture: every contract test runs once per backend listed in STORE_FACTORIES.

A factory maps a per-test location (a fresh directory) to an unopened store; called twice with the same location it
must give a store over the same data, which is how the durability tests reopen a closed store. To run the contract
against another backend, add a ``pytest.param`` here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from pool.store.abstract import AbstractPoolStore
from pool.store.sqlite import SqlitePoolStore

StoreFactory = Callable[[Path], AbstractPoolStore]


def sqlite_store(location: Path) -> AbstractPoolStore:
    return SqlitePoolStore(location / "pool.sqlite")


STORE_FACTORIES = [pytest.param(sqlite_store, id="sqlite")]


@pytest.fixture(params=STORE_FACTORIES)
def store_factory(request: pytest.FixtureRequest) -> StoreFactory:
    factory: StoreFactory = request.param
    return factory


@pytest.fixture
async def store(store_factory: StoreFactory, tmp_path: Path) -> AsyncIterator[AbstractPoolStore]:
    opened = store_factory(tmp_path)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
