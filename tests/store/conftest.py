"""The ``store`` fixture: every contract test runs once per backend listed in STORE_FACTORIES.

A factory maps a per-test location (a fresh directory) to an unopened store; called twice with the same location it
must give a store over the same data, which is how the durability tests reopen a closed store. To run the contract
against another backend, add a ``pytest.param`` here.

PostgreSQL: one throwaway server per test session (``postgres_server``, started on first use from the machine's own
PostgreSQL installation, see pool/devnet/postgres.py), one fresh database per location, dropped when the test ends.
Where PostgreSQL is missing those tests fail (never skip) with a message that says how to install it.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from pool.devnet.postgres import PostgresServer, PostgresUnavailable
from pool.store.abstract import AbstractPoolStore
from pool.store.postgres import PostgresPoolStore
from pool.store.sqlite import SqlitePoolStore

StoreFactory = Callable[[Path], AbstractPoolStore]


def sqlite_store(location: Path) -> AbstractPoolStore:
    return SqlitePoolStore(location / "pool.sqlite")


class PostgresDatabases:
    """A StoreFactory over one server: each new location gets a new database; ``drop_all`` removes them."""

    _numbers = itertools.count()

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self._databases: dict[Path, str] = {}

    def __call__(self, location: Path) -> AbstractPoolStore:
        if location not in self._databases:
            name = f"pool_test_{next(self._numbers)}"
            self.server.create_database(name)
            self._databases[location] = name
        return PostgresPoolStore(self.server.dsn(self._databases[location]), max_connections=5)

    def drop_all(self) -> None:
        for name in self._databases.values():
            self.server.drop_database(name)
        self._databases.clear()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer.start()
    except PostgresUnavailable as exc:
        pytest.fail(f"cannot start a PostgreSQL server for the PostgreSQL store tests: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


STORE_FACTORIES = [pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql")]


@pytest.fixture(params=STORE_FACTORIES)
def store_factory(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    if request.param == "sqlite":
        yield sqlite_store
        return
    databases = PostgresDatabases(request.getfixturevalue("postgres_server"))
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture
async def store(store_factory: StoreFactory, tmp_path: Path) -> AsyncIterator[AbstractPoolStore]:
    opened = store_factory(tmp_path)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
