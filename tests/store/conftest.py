"""The ``store`` fixture: every contract test runs once per backend listed in STORE_FACTORIES.

A factory maps a per-test location (a fresh directory) to an unopened store; called twice with the same location it
must give a store over the same data, which is how the durability tests reopen a closed store. To run the contract
against another backend, add a ``pytest.param`` here.

PostgreSQL: one throwaway server per test session (``postgres_server``, started on first use from the machine's own
PostgreSQL installation, see pool/devnet/postgres.py), one fresh database per location, dropped when the test ends.
A fresh database is a copy of ``postgres_schema``, a database the store's migrations ran on once per session (copied
in some 0.03 s, where running them takes 0.2 s). Where PostgreSQL is missing those tests fail (never skip) with a
message that says how to install it.

SQLite: a fresh location's store file is likewise a copy of ``migrated_sqlite_file()`` (0.01 s against 0.1 s). A test
of migrating from nothing asks either backend for ``empty=True``.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import itertools
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import pytest

from pool.devnet.postgres import PostgresServer, PostgresUnavailable, memory_directory
from pool.store import postgres, sqlite
from pool.store.abstract import AbstractPoolStore
from pool.store.postgres import PostgresPoolStore
from pool.store.sqlite import SqlitePoolStore

# One schema step more than this code's: what a newer version of the pool, started during a rolling upgrade, does to
# the database under the older one still running.
NEWER_CODES_STEP = ("CREATE TABLE written_by_newer_code (id INTEGER PRIMARY KEY)",)


class StoreFactory(Protocol):
    def __call__(self, location: Path, *, newer_schema: bool = False, empty: bool = False) -> AbstractPoolStore:
        """``empty``: the store's database starts with no schema at all, for a test of migrating from nothing
        (otherwise it starts as a copy of a migrated one)."""
        ...


def sqlite_store(location: Path, *, newer_schema: bool = False, empty: bool = False) -> AbstractPoolStore:
    path = location / "pool.sqlite"
    if not empty and not path.exists():
        location.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(migrated_sqlite_file(), path)
    migrations = sqlite.MIGRATIONS + ((NEWER_CODES_STEP,) if newer_schema else ())
    return SqlitePoolStore(path, migrations=migrations)


@functools.cache
def migrated_sqlite_file() -> Path:
    """A closed SQLite store file the migrations ran on and nothing else, made once per process (in memory where
    there is room), to copy."""
    directory = Path(tempfile.mkdtemp(prefix="pool-sqlite-schema-", dir=memory_directory()))
    atexit.register(shutil.rmtree, directory, True)
    path = directory / "pool.sqlite"
    migrate(SqlitePoolStore(path))
    # Closed, the store's WAL is folded into the file: the file alone is the whole store.
    assert not path.with_name(path.name + "-wal").exists()
    return path


def migrate(store: AbstractPoolStore) -> None:
    """Open the store (which runs its migrations) and close it, in a loop of its own: this may be called from a test
    or fixture running in the session's loop."""

    async def open_and_close() -> None:
        await store.open()
        await store.close()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, open_and_close()).result()


class PostgresDatabases:
    """A StoreFactory over one server: each new location gets a new database, a copy of ``template`` unless asked
    for an empty one; ``drop_all`` removes them."""

    _numbers = itertools.count()

    def __init__(self, server: PostgresServer, template: str) -> None:
        self.server = server
        self.template = template
        self._databases: dict[Path, str] = {}

    def __call__(self, location: Path, *, newer_schema: bool = False, empty: bool = False) -> AbstractPoolStore:
        if location not in self._databases:
            name = f"pool_test_{next(self._numbers)}"
            self.server.create_database(name, template=None if empty else self.template)
            self._databases[location] = name
        migrations = postgres.MIGRATIONS + ((NEWER_CODES_STEP,) if newer_schema else ())
        return PostgresPoolStore(self.server.dsn(self._databases[location]), max_connections=5, migrations=migrations)

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


@pytest.fixture(scope="session")
def postgres_schema(postgres_server: PostgresServer) -> str:
    """The name of a database holding the store's schema and nothing else, to copy (``template=``); never connected
    to after this, or it could not be copied."""
    name = "pool_schema"
    postgres_server.create_database(name)
    migrate(PostgresPoolStore(postgres_server.dsn(name), max_connections=1))
    return name


STORE_FACTORIES = [pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql")]


@pytest.fixture(params=STORE_FACTORIES)
def store_factory(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    if request.param == "sqlite":
        yield sqlite_store
        return
    databases = PostgresDatabases(
        request.getfixturevalue("postgres_server"), request.getfixturevalue("postgres_schema")
    )
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
