"""The small parts that keep hostile input cheap and quiet (the whole is fuzzed in test_hostile_requests.py)."""

from __future__ import annotations

import logging

import pytest
from aiohttp.http_exceptions import LineTooLong

from pool.http.guard import MAX_JSON_DEPTH, nesting_depth, quiet_http_parser_errors
from pool.protocol.encoding import parse_uint64
from pool.protocol.errors import MESSAGE_LIMIT, PoolProtocolError, malformed, one_line


@pytest.mark.parametrize("digits", [21, 4_301, 100_000])
def test_huge_integers_are_refused_before_conversion(digits: int) -> None:
    with pytest.raises(PoolProtocolError, match="does not fit in 64 bits"):
        parse_uint64("9" * digits, "authentication_token")


def test_integers_with_leading_zeros_still_parse() -> None:
    assert parse_uint64("0" * 5_000 + "42", "token") == 42
    assert parse_uint64(str(2**64 - 1), "token") == 2**64 - 1


def test_nesting_depth_is_measured_without_recursion() -> None:
    assert nesting_depth(1) == 0
    assert nesting_depth({"payload": {"proof_of_space": {"size": 32}}}) == 3
    deep: list[object] = []
    for _ in range(200_000):  # far deeper than Python could recurse
        deep = [deep]
    assert nesting_depth(deep) > MAX_JSON_DEPTH


def test_messages_quoting_the_client_are_one_short_line() -> None:
    assert one_line("a\nb\x00c") == "a b c"
    long = one_line("x" * 10_000)
    assert len(long) == MESSAGE_LIMIT and long.endswith("...")
    assert len(malformed("y" * 10_000).message) <= MESSAGE_LIMIT


def test_http_parser_refusals_are_logged_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    quiet_http_parser_errors()
    logger = logging.getLogger("aiohttp.server")
    with caplog.at_level(logging.DEBUG, logger="aiohttp.server"):
        try:
            raise LineTooLong(b"x" * 100, "8190")
        except LineTooLong:
            logger.exception("Error handling request from %s", "192.0.2.1")
    [record] = caplog.records
    assert record.exc_info is None and record.levelno == logging.INFO
    assert "192.0.2.1" in record.getMessage() and "\n" not in record.getMessage()
