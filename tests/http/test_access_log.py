"""logging.access_log: a line per request on the real serve path, without the query string (signatures ride in it)."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import pytest

from pool.http.access_log import ACCESS_LOGGER
from tests.http.test_connections import HONEST, HOST, serving

SIGNATURE = "a1" * 96


async def test_a_line_per_request_names_method_path_status_time_and_client_without_the_query(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    async with serving(tmp_path, access_log=True, trusted_proxies=[HONEST]) as pool:
        base = f"http://{HOST}:{pool.port}"
        connector = aiohttp.TCPConnector(local_addr=(HONEST, 0))
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(f"{base}/pool_info?token=secret") as answer:
                assert answer.status == 200
            login = f"{base}/login?launcher_id={'00' * 32}&authentication_token=1&signature={SIGNATURE}"
            async with session.get(login, headers={"X-Forwarded-For": "203.0.113.7"}) as answer:
                login_status = answer.status
    lines = [record.getMessage() for record in caplog.records if record.name == ACCESS_LOGGER]
    assert len(lines) == 2, lines
    assert lines[0].startswith("GET /pool_info 200 ") and lines[0].endswith(f" ms {HONEST}")
    # The client as the limits see it: the address a trusted proxy forwarded, not the proxy.
    assert lines[1].startswith(f"GET /login {login_status} ") and lines[1].endswith(" ms 203.0.113.7")
    for line in lines:
        assert "?" not in line and "secret" not in line and SIGNATURE not in line
        float(line.split()[3])  # the duration in milliseconds


async def test_no_access_log_unless_asked(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    async with serving(tmp_path) as pool, aiohttp.ClientSession() as session:
        async with session.get(f"http://{HOST}:{pool.port}/pool_info") as answer:
            assert answer.status == 200
    assert not [record for record in caplog.records if record.name.startswith(("pool.access", "aiohttp.access"))]
