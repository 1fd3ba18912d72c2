"""logging: as an operator ships it: JSON lines, a file logrotate may move, pid and role on every line."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pool import logs
from pool.config import LoggingConfig, PoolConfig, load_config_file, parse_config
from pool.server import StartupError, configure_logging, run_server
from tests.config.test_cli import chia_root, free_port, write_config
from tests.config.test_config import REPO, example


def config_logging_to(path: Path, form: str) -> PoolConfig:
    config = parse_config(example(), REPO)
    return dataclasses.replace(config, logging=LoggingConfig(level="INFO", file=path, format=form))


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """configure_logging replaces the root logger's handlers: give pytest's back afterwards, and the role."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    logs.set_role("worker")
    logs.set_leading(False)


def test_the_example_logs_text_to_stderr_without_an_access_log() -> None:
    config = parse_config(example(), REPO)
    assert (config.logging.format, config.logging.access_log, config.logging.file) == ("text", False, None)


def test_json_lines_carry_time_level_logger_message_pid_role_and_exception(
    tmp_path: Path, restored_logging: None
) -> None:
    path = tmp_path / "logs" / "pool.log"
    configure_logging(config_logging_to(path, "json"))
    logs.set_role("worker 2")
    logging.getLogger("pool.test").info("hello %s\nsecond line", "farmer")
    try:
        raise ValueError("broken")
    except ValueError:
        logging.getLogger("pool.test").exception("it failed")
    lines = path.read_text().splitlines()
    assert len(lines) == 2  # a newline in a message or a traceback never splits a record
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "hello farmer\nsecond line"
    assert (first["level"], first["logger"], first["pid"], first["role"]) == (
        "INFO",
        "pool.test",
        os.getpid(),
        "worker 2",
    )
    time = datetime.fromisoformat(first["time"])
    assert time.utcoffset() == timedelta(0)
    assert "exception" not in first
    assert second["level"] == "ERROR" and second["message"] == "it failed"
    assert "Traceback" in second["exception"] and "ValueError: broken" in second["exception"]


def test_text_lines_name_pid_and_role(tmp_path: Path, restored_logging: None) -> None:
    path = tmp_path / "pool.log"
    configure_logging(config_logging_to(path, "text"))
    logs.set_role("supervisor")
    logging.getLogger("pool.test").warning("worker 1 exited")
    assert f" WARNING {os.getpid()} supervisor pool.test: worker 1 exited" in path.read_text()


def test_the_file_is_reopened_after_logrotate_moves_it(tmp_path: Path, restored_logging: None) -> None:
    path = tmp_path / "pool.log"
    configure_logging(config_logging_to(path, "text"))
    log = logging.getLogger("pool.test")
    log.info("before the rotation")
    path.rename(tmp_path / "pool.log.1")  # what logrotate does (without copytruncate)
    log.info("after the rotation")
    assert "after the rotation" in path.read_text()
    assert "before the rotation" not in path.read_text()
    assert "after the rotation" not in (tmp_path / "pool.log.1").read_text()


def test_the_role_filter_reads_the_current_role(restored_logging: None) -> None:
    role_filter = logs.RoleFilter()

    def role() -> str:
        record = logging.LogRecord("pool", logging.INFO, __file__, 1, "m", None, None)
        assert role_filter.filter(record)
        return str(record.__dict__["role"])

    logs.set_role("worker 3")
    assert role() == "worker 3"
    logs.set_leading(True)  # this process became the leader
    assert role() == "leader"
    logs.set_leading(False)  # and lost it
    assert role() == "worker 3"
    logs.set_role("supervisor")
    assert role() == "supervisor"


@pytest.mark.parametrize(("worker", "workers", "role"), [(2, 2, "worker 2"), (None, 1, "worker")])
async def test_a_worker_process_takes_its_role_at_start(
    tmp_path: Path, restored_logging: None, worker: int | None, workers: int, role: str
) -> None:
    """As ``python -m pool --worker 2`` runs it (and a pool of one process): its node does not answer, so it stops
    at once, its role set before its first line."""
    written = write_config(
        tmp_path,
        chain__chia_root=str(chia_root(tmp_path)),
        chain__full_node__rpc_port=free_port(),  # nothing listens there
        server__workers=workers,
    )
    config = load_config_file(written)
    logs.set_role("supervisor")
    try:
        with pytest.raises(StartupError):
            await run_server(config, worker=worker)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # run_server's, on the test's loop
            asyncio.get_running_loop().remove_signal_handler(sig)
    assert logs.current_role() == role
