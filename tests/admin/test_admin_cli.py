"""The operator's commands through click's runner, against a real SQLite store (the store methods they use run on
PostgreSQL too, in tests/store/test_store_contract.py)."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from pool.__main__ import EXIT_CONFIG, EXIT_REFUSED, cli
from pool.config import load_config_file
from pool.devnet.postgres import PostgresServer
from pool.store.abstract import AbstractPoolStore
from pool.store.factory import create_store
from pool.store.models import ClaimStatus, FarmerRecord, FarmerSettings
from tests.store.conftest import postgres_server  # noqa: F401 (a fixture)
from tests.store.test_store_contract import (
    farmer_payment,
    fee_payment,
    fund,
    h,
    make_claim,
    make_farmer,
    make_partial,
    make_round,
)

REPO = Path(__file__).resolve().parents[2]
DAY = 86_400


class Pool:
    """A config file naming a real store (SQLite unless ``dsn``) holding two farmers, a claim, a paid round and some
    partials."""

    def __init__(self, tmp_path: Path, dsn: str | None = None) -> None:
        self.store_path = tmp_path / "pool.sqlite"
        data = yaml.safe_load((REPO / "config.yaml").read_text())
        data["store"] = {"backend": "sqlite", "path": str(self.store_path)}
        if dsn is not None:
            data["store"] = {"backend": "postgresql", "dsn": dsn}
        data["chain"]["chia_root"] = str(tmp_path / "no-chia-root")
        self.config = tmp_path / "config.yaml"
        self.config.write_text(yaml.safe_dump(data))
        self.farmers = [make_farmer(1), make_farmer(2)]
        asyncio.run(self._fill())

    def _store(self) -> AbstractPoolStore:
        return create_store(load_config_file(self.config).store)

    async def _fill(self) -> None:
        store = self._store()
        await store.open()
        try:
            first, second = self.farmers
            for farmer in self.farmers:
                await store.add_farmer(farmer)
            await fund(store, [(first, 1_500_000_000_000), (second, 250)], pool_fee=50)  # claims "funding claim 0"
            round_id = await store.create_payout_round(
                make_round(1_500_000_000_000, pool_fee=50, created_at=3 * DAY),
                [farmer_payment(first, 1_500_000_000_000), fee_payment(50)],
                [0],
            )
            (batch,) = await store.batches(round_id)
            assert batch.id is not None
            await store.mark_batch_submitted(batch.id, h("payment tx"), b"bundle", 3 * DAY + 5)
            assert await store.add_reward_claim(make_claim("claimed coin", second))
            ids = [await store.add_partial(make_partial(first, n, DAY + 60 * n)) for n in range(3)]
            assert await store.confirm_partials([i for i in ids if i is not None])
            await store.add_partial_refusal(second.launcher_id, 2 * DAY + 1, "TOO_LATE")
        finally:
            await store.close()

    def farmer(self, index: int) -> FarmerRecord:
        return self.farmers[index]

    def record(self, index: int) -> FarmerRecord:
        async def read() -> FarmerRecord:
            store = self._store()
            await store.open()
            try:
                found = await store.get_farmer(self.farmers[index].launcher_id)
                assert found is not None
                return found
            finally:
                await store.close()

        return asyncio.run(read())


@pytest.fixture
def pool(tmp_path: Path) -> Pool:
    return Pool(tmp_path)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="python -m pool")


def test_help_lists_every_command() -> None:
    result = run("--help")
    assert result.exit_code == 0
    commands = result.output.split("Commands:")[1]
    for command in ("claims", "difficulty", "doctor", "export", "farmers", "ledger", "migrate-store", "payments"):
        assert f"  {command} " in commands
    assert "prune" in commands
    farmers = run("farmers", "--help")
    for command in ("list", "show", "history", "ban", "unban"):
        assert f"  {command} " in farmers.output


def test_config_may_come_before_or_after_the_command(pool: Pool) -> None:
    after = run("farmers", "list", "--config", str(pool.config))
    before = run("--config", str(pool.config), "farmers", "list")
    middle = run("farmers", "--config", str(pool.config), "list")
    assert after.exit_code == before.exit_code == middle.exit_code == 0, after.output
    assert after.output == before.output == middle.output
    assert pool.farmer(0).launcher_id.hex() in after.output and "2 farmer(s)" in after.output
    ledger = run("--config", str(pool.config), "ledger", "--no-wallet")  # once refused: the command had to be first
    assert ledger.exit_code == 0, ledger.output
    assert "balanced" in ledger.output


def test_missing_store_and_bad_launcher_ids_are_one_line_errors(pool: Pool, tmp_path: Path) -> None:
    pool.store_path.rename(tmp_path / "elsewhere.sqlite")
    missing = run("farmers", "list", "--config", str(pool.config))
    assert missing.exit_code == EXIT_CONFIG
    assert "no pool database at" in missing.output and "Traceback" not in missing.output
    bad = run("farmers", "show", "0x1234", "--config", str(pool.config))
    assert bad.exit_code == 2 and "64 hex digits" in bad.output


def test_ban_and_unban_are_kept_in_the_history_shown(pool: Pool) -> None:
    launcher = pool.farmer(0).launcher_id.hex()
    banned = run(
        "farmers", "ban", "0x" + launcher, "--reason", "one plot, many launchers", "--config", str(pool.config)
    )
    assert banned.exit_code == 0, banned.output
    record = pool.record(0)
    assert record.ban_reason == "one plot, many launchers" and record.banned_at is not None
    assert record.owed == pool.farmer(0).owed  # what it is owed stays owed
    again = run("farmers", "ban", launcher, "--reason", "other", "--config", str(pool.config))
    assert again.exit_code == 0 and "banned already" in again.output
    listed = run("farmers", "list", "--banned", "--config", str(pool.config))
    assert launcher in listed.output and pool.farmer(1).launcher_id.hex() not in listed.output
    assert "1 farmer(s)" in listed.output

    assert run("farmers", "unban", launcher, "--config", str(pool.config)).exit_code == 0
    assert pool.record(0).banned_at is None
    shown = run("farmers", "show", launcher, "--config", str(pool.config))
    assert shown.exit_code == 0, shown.output
    assert "banned by the pool operator: one plot, many launchers" in shown.output
    assert "ban lifted by the pool operator (it was: one plot, many launchers)" in shown.output
    assert f"joined the pool, payout instructions {pool.farmer(0).payout_instructions}" in shown.output
    history = run("farmers", "history", launcher, "--limit", "1", "--config", str(pool.config))
    assert history.output.count("\n") == 1 and "ban lifted" in history.output

    unknown = run("farmers", "ban", h("nobody").hex(), "--reason", "x", "--config", str(pool.config))
    assert unknown.exit_code == EXIT_REFUSED and "no farmer with launcher id" in unknown.output


def test_difficulty_set_is_in_force_and_in_the_history(pool: Pool) -> None:
    launcher = pool.farmer(1).launcher_id.hex()
    result = run("difficulty", "set", launcher, "250", "--config", str(pool.config))
    assert result.exit_code == 0, result.output
    assert f"difficulty of {launcher}: 250 (was 10)" in result.output
    assert pool.record(1).difficulty == 250
    history = run("farmers", "history", launcher, "--config", str(pool.config))
    assert "difficulty set by the pool operator from 10 to 250" in history.output
    assert run("difficulty", "set", launcher, "0", "--config", str(pool.config)).exit_code == 2


def test_payments_list_and_show(pool: Pool) -> None:
    listed = run("payments", "list", "--config", str(pool.config))
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert len(lines) == 3  # the header, the fee address's payment, the farmer's
    assert "the pool fee address" in lines[1]
    assert "1500000000000" in lines[2] and "1.500000000000 XCH" in lines[2] and h("payment tx").hex() in lines[2]
    page = run("payments", "list", "--limit", "1", "--offset", "1", "--config", str(pool.config))
    assert page.output.splitlines()[1:] == lines[2:]
    mine = run("payments", "list", "--launcher", pool.farmer(1).launcher_id.hex(), "--config", str(pool.config))
    assert mine.output.splitlines()[1:] == []

    shown = run("payments", "show", "1", "--config", str(pool.config))
    assert shown.exit_code == 0, shown.output
    assert f"transaction {h('payment tx').hex()} (version 1" in shown.output
    assert f"pays 1500000000000 mojos (1.500000000000 XCH) to farmer {pool.farmer(0).launcher_id.hex()}" in shown.output
    missing = run("payments", "show", "9", "--config", str(pool.config))
    assert missing.exit_code == EXIT_REFUSED and "no payout round 9" in missing.output


def test_claims_list_pages_and_filters(pool: Pool) -> None:
    listed = run("claims", "list", "--config", str(pool.config))
    assert listed.exit_code == 0, listed.output
    assert h("claimed coin").hex() in listed.output and h("funding claim 0").hex() in listed.output
    confirmed = run("claims", "list", "--status", ClaimStatus.CONFIRMED.value, "--config", str(pool.config))
    assert h("funding claim 0").hex() in confirmed.output and h("claimed coin").hex() not in confirmed.output
    assert len(run("claims", "list", "--limit", "1", "--config", str(pool.config)).output.splitlines()) == 2


def test_export_partials_per_farmer_per_day_and_payments(pool: Pool, tmp_path: Path) -> None:
    result = run("export", "partials", "--csv", "--config", str(pool.config))
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output)))
    first, second = (f.launcher_id.hex() for f in pool.farmers)
    assert rows == [
        ["day", "launcher_id", "outcome", "partials", "points"],
        ["1970-01-02", first, "confirmed", "3", "30"],
        ["1970-01-03", second, "TOO_LATE", "1", "0"],
    ]
    since = run("export", "partials", "--since", "1970-01-03", "--config", str(pool.config))
    assert [row[0] for row in csv.reader(io.StringIO(since.output))] == ["day", "1970-01-03"]

    target = tmp_path / "payments.csv"
    written = run("export", "payments", "--output", str(target), "--config", str(pool.config))
    assert written.exit_code == 0, written.output
    payments = list(csv.DictReader(target.open()))
    assert [(p["launcher_id"], p["amount_mojos"], p["tx_id"]) for p in payments] == [
        (first, "1500000000000", h("payment tx").hex()),
        ("", "50", h("payment tx").hex()),
    ]
    assert run("export", "payments", "--until", "1970-01-04", "--config", str(pool.config)).output.count("\n") == 1
    assert run("export", "payments", "--since", "May 3", "--config", str(pool.config)).exit_code == 2


def test_the_commands_run_on_postgresql_too(tmp_path: Path, postgres_server: PostgresServer) -> None:  # noqa: F811
    pool = Pool(tmp_path, dsn=postgres_server.create_database("pool_admin_cli"))
    try:
        launcher = pool.farmer(0).launcher_id.hex()
        assert run("farmers", "ban", launcher, "--reason", "on postgres", "--config", str(pool.config)).exit_code == 0
        assert run("difficulty", "set", launcher, "99", "--config", str(pool.config)).exit_code == 0
        shown = run("farmers", "show", launcher, "--config", str(pool.config))
        assert "banned by the pool operator: on postgres" in shown.output
        assert "difficulty set by the pool operator from 10 to 99" in shown.output
        exported = run("export", "partials", "--config", str(pool.config))
        assert f"1970-01-02,{launcher},confirmed,3,30" in exported.output
        listed = run("payments", "list", "--config", str(pool.config))
        assert "1.500000000000 XCH" in listed.output
        assert h("claimed coin").hex() in run("claims", "list", "--config", str(pool.config)).output
    finally:
        postgres_server.drop_database("pool_admin_cli")


def test_history_shows_the_settings_chosen_and_refuses_a_limit_past_64_bits(pool: Pool) -> None:
    launcher_id = pool.farmer(0).launcher_id

    async def choose() -> None:
        store = pool._store()
        await store.open()
        try:
            await store.change_farmer_settings(FarmerSettings(launcher_id, min_payout=5_000), now=4 * DAY)
        finally:
            await store.close()

    asyncio.run(choose())
    history = run("farmers", "history", launcher_id.hex(), "--limit", "1", "--config", str(pool.config))
    assert history.exit_code == 0, history.output
    assert "min_payout set by the farmer from the pool's default to 5000" in history.output
    # A number the store's integers cannot hold is the command line's mistake, not a traceback.
    config = ("--config", str(pool.config))
    for command, name in [
        (("farmers", "history", launcher_id.hex(), "--limit", str(2**63)), "--limit"),
        (("difficulty", "set", launcher_id.hex(), str(2**63)), "VALUE"),
        (("payments", "show", str(2**64)), "ROUND_ID"),
        (("payments", "list", "--offset", str(2**63)), "--offset"),
    ]:
        huge = run(*command, *config)
        assert huge.exit_code == 2 and name in huge.output, (command, huge.output)
