"""``python -m pool doctor``'s store line says when an SQLite store is larger than the machine's memory (what the
scale bench measured costs the partials' latency and CPU), and nothing more when it fits."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from pool import doctor
from pool.config import PoolConfig, StoreConfig
from pool.store.sqlite import SqlitePoolStore


def config_of(store: StoreConfig) -> PoolConfig:
    return cast(PoolConfig, SimpleNamespace(store=store))  # the store check reads only config.store


async def a_store(path: Path) -> StoreConfig:
    store = SqlitePoolStore(path)
    await store.open()
    await store.close()
    return StoreConfig(backend="sqlite", path=path)


def test_the_machines_memory_is_known_here() -> None:
    memory = doctor.machine_memory()
    assert memory is not None and memory > 2**20


async def test_a_store_larger_than_the_memory_is_named_with_both_sizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await a_store(tmp_path / "pool.sqlite")
    size = (tmp_path / "pool.sqlite").stat().st_size
    monkeypatch.setattr(doctor, "machine_memory", lambda: size // 2)
    ok, detail = await doctor._store_check(config_of(store))
    assert ok  # a warning, not a failure: the pool runs
    assert "at schema version" in detail and "more than this machine's memory" in detail
    assert "partials.retention_days" in detail


async def test_a_store_that_fits_gets_no_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await a_store(tmp_path / "pool.sqlite")
    size = (tmp_path / "pool.sqlite").stat().st_size
    monkeypatch.setattr(doctor, "machine_memory", lambda: size * 2)
    ok, detail = await doctor._store_check(config_of(store))
    assert ok and "memory" not in detail
    monkeypatch.setattr(doctor, "machine_memory", lambda: None)  # a system that does not say
    assert "memory" not in (await doctor._store_check(config_of(store)))[1]
