"""The store section: SQLite by default, PostgreSQL with a DSN and a password that never appears in the config."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from pool.config import ConfigError, parse_config
from pool.store.factory import create_store
from pool.store.postgres import PostgresPoolStore

REPO = Path(__file__).resolve().parents[2]
DSN = "postgresql://pool@db.example:5432/pool"


def with_store(**store: Any) -> dict[str, Any]:
    data = yaml.safe_load((REPO / "config.yaml").read_text())
    assert isinstance(data, dict)
    data = copy.deepcopy(data)
    data["store"] = store
    return data


def test_postgresql_store_is_read_with_its_pool_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOL_TEST_DB_PASSWORD", "s3cret-from-env")
    config = parse_config(
        with_store(backend="postgresql", dsn=DSN, password_env="POOL_TEST_DB_PASSWORD", max_connections=20), tmp_path
    )
    assert (config.store.backend, config.store.dsn) == ("postgresql", DSN)
    assert (config.store.min_connections, config.store.max_connections) == (1, 20)
    assert config.store.password() == "s3cret-from-env"
    assert "s3cret" not in repr(config)  # the config holds where the password is, never the password
    store = create_store(config.store)
    assert isinstance(store, PostgresPoolStore)
    assert "s3cret" not in repr(store)


def test_password_file_gives_its_first_line(tmp_path: Path) -> None:
    secret = tmp_path / "db-password"
    secret.write_text("s3cret-from-file\n")
    config = parse_config(with_store(backend="postgresql", dsn=DSN, password_file=str(secret)), tmp_path)
    assert config.store.password() == "s3cret-from-file"
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize(
    "store, key, words",
    [
        ({"backend": "postgresql"}, "store.dsn", "missing"),
        ({"backend": "postgresql", "dsn": "mysql://x@y/z"}, "store.dsn", "postgresql://"),
        ({"backend": "postgresql", "dsn": "postgresql://pool:hunter2@db/pool"}, "store.dsn", "password_env"),
        ({"backend": "postgresql", "dsn": DSN + "?password=hunter2"}, "store.dsn", "must not contain a password"),
        (
            {"backend": "postgresql", "dsn": DSN, "password_env": "POOL_TEST_UNSET_VARIABLE"},
            "store.password_env",
            "not set",
        ),
        ({"backend": "postgresql", "dsn": DSN, "password_file": "/nonexistent/pw"}, "store.password_file", "not found"),
        ({"backend": "postgresql", "dsn": DSN, "min_connections": 0}, "store.min_connections", "at least 1"),
        (
            {"backend": "postgresql", "dsn": DSN, "min_connections": 5, "max_connections": 2},
            "store.max_connections",
            "min_connections",
        ),
        ({"backend": "sqlite", "dsn": DSN}, "store.dsn", "only for store.backend: postgresql"),
        ({"backend": "mysql"}, "store.backend", "sqlite, postgresql"),
        ({"backend": "postgresql", "dsn": DSN, "pasword_env": "X"}, "store.pasword_env", "unknown key"),
    ],
)
def test_bad_store_settings_name_their_key(store: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(with_store(**store), REPO)
    assert info.value.key == key
    assert words in str(info.value)
    assert "hunter2" not in str(info.value)


def test_a_password_variable_that_disappears_is_named_when_the_store_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOL_TEST_DB_PASSWORD", "x")
    config = parse_config(with_store(backend="postgresql", dsn=DSN, password_env="POOL_TEST_DB_PASSWORD"), REPO)
    monkeypatch.delenv("POOL_TEST_DB_PASSWORD")
    with pytest.raises(ConfigError) as info:
        create_store(config.store)
    assert info.value.key == "store.password_env"
