"""What a reload (SIGHUP) takes from the config file: the keys that may change at run time, each other changed key
named, an invalid file refused whole. The process side (signals, the certificate, requests in flight) is in
tests/http/test_reload_process.py."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from pool.config import ConfigError, PoolConfig, load_config_file
from pool.reload import RELOADABLE, Reloader, changed_keys

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, document: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(document))


@pytest.fixture
def document() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "config.yaml").read_text())
    data["chain"]["chia_root"] = str(REPO)  # read by nobody here
    return data


def loaded(tmp_path: Path, document: dict[str, Any]) -> PoolConfig:
    path = tmp_path / "config.yaml"
    write(path, document)
    return load_config_file(path)


def watched(running: PoolConfig) -> tuple[Reloader, list[PoolConfig]]:
    """A reloader of ``running`` and the configurations it applies."""
    reloader = Reloader(running)
    seen: list[PoolConfig] = []
    reloader.on_reload(seen.append)
    return reloader, seen


def test_the_safe_keys_are_applied_and_the_others_named(
    tmp_path: Path, document: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    running = loaded(tmp_path, document)
    reloader, seen = watched(running)
    document["logging"]["level"] = "DEBUG"
    document["server"]["operator_token"] = "n" * 20
    document["limits"]["per_address"] = {"rate": 5, "burst": 7}
    document["pool"]["fee"] = 0.02
    document["pool"]["target_address"] = document["pool"]["fee_address"]
    document["server"]["port"] = 9999
    document["store"]["path"] = "elsewhere.sqlite"
    document["limits"]["header_timeout"] = 3
    write(tmp_path / "config.yaml", document)
    with caplog.at_level(logging.INFO, logger="pool.reload"):
        assert reloader.reload()
    (config,) = seen
    assert reloader.config is config
    assert config.logging.level == "DEBUG" and config.server.operator_token == "n" * 20
    assert (config.limits.per_address.rate, config.limits.per_address.burst) == (5.0, 7)
    # What cannot change at run time keeps its running value ...
    assert config.pool == running.pool and config.store == running.store and config.server.port == running.server.port
    assert config.limits.header_timeout == running.limits.header_timeout
    # ... and each such key is named, in the file's own words.
    waiting = {r.getMessage().split("'")[1] for r in caplog.records if r.levelno == logging.WARNING}
    assert waiting == {"pool.fee", "pool.target_address", "server.port", "store.path", "limits.header_timeout"}
    (done,) = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    for key in ("logging.level", "server.operator_token", "limits.per_address.rate", "limits.per_address.burst"):
        assert key in done
    assert set(changed_keys(running, config)) <= RELOADABLE


def test_an_invalid_file_is_refused_whole(
    tmp_path: Path, document: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    reloader, seen = watched(loaded(tmp_path, document))
    running = reloader.config
    document["limits"]["per_launcher"] = {"rate": "fast"}
    write(tmp_path / "config.yaml", document)
    with caplog.at_level(logging.ERROR, logger="pool.reload"):
        assert not reloader.reload()
    assert seen == [] and reloader.config is running
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "'limits.per_launcher.rate'" in line and "runs on unchanged" in line


def test_an_applier_may_refuse_before_anything_changes(
    tmp_path: Path, document: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """As the certificate's applier does when the new certificate cannot be loaded."""
    reloader = Reloader(loaded(tmp_path, document))
    seen: list[PoolConfig] = []

    def refuse(_: PoolConfig) -> None:
        raise ConfigError("server.tls_cert", "cannot load it")

    reloader.on_reload(refuse)
    reloader.on_reload(seen.append)
    with caplog.at_level(logging.ERROR, logger="pool.reload"):
        assert not reloader.reload()
    assert seen == []
    assert any("'server.tls_cert': cannot load it" in r.getMessage() for r in caplog.records)


def test_turning_tls_on_waits_for_a_restart(tmp_path: Path, document: dict[str, Any]) -> None:
    """A listener cannot start speaking TLS: the certificate's keys are reloadable only while TLS stays on."""
    reloader = Reloader(loaded(tmp_path, document))
    document["server"]["tls_cert"] = document["server"]["tls_key"] = str(REPO / "config.yaml")
    write(tmp_path / "config.yaml", document)
    assert reloader.reload()
    assert reloader.config.server.tls_cert is None
