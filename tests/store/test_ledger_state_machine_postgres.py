"""The ledger state machine of test_ledger_state_machine.py, through the real PostgresPoolStore.

Each example gets a fresh database (a copy of the session's migrated ``postgres_schema``) on the session's throwaway
PostgreSQL server; the machine's rules, model and
invariants are those of the SQLite run, only the store under them differs (``new_store``: what its ``restarted``
rule and the other process that takes leadership open). Fewer examples than on SQLite: each costs a database.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from pool.devnet.postgres import PostgresServer
from pool.store.abstract import AbstractPoolStore
from pool.store.postgres import PostgresPoolStore
from tests.store.test_ledger_state_machine import LedgerMachine

_databases = itertools.count()


class PostgresLedgerMachine(LedgerMachine):
    # Set by the test on a subclass (hypothesis builds the machine with no arguments).
    server: PostgresServer
    template: str
    database: str
    dsn: str

    def create_database(self) -> None:
        self.database = f"pool_ledger_machine_{next(_databases)}"
        self.dsn = self.server.create_database(self.database, template=self.template)

    def new_store(self) -> AbstractPoolStore:
        return PostgresPoolStore(self.dsn, max_connections=2)

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            self.server.drop_database(self.database)


def test_ledger_state_machine_on_postgresql(postgres_server: PostgresServer, postgres_schema: str) -> None:
    class OnThisServer(PostgresLedgerMachine):
        server = postgres_server
        template = postgres_schema

    run_state_machine_as_test(
        OnThisServer,
        settings=settings(
            max_examples=20, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
        ),
    )
