"""Hostile and broken requests: whatever their shape or size, a short REQUEST_FAILED and at most one log line.

Anyone can send the pool anything. A request that does not parse must cost little, change nothing and leave at most
one short line in the log, or a stream of them would flood the operator's log (and disk). So:

- the body is read and decoded here, once, with every way that can fail (too large, too slow, a broken chunked or
  compressed transfer, not UTF-8, not JSON, a number of more digits than Python converts, nesting deeper than any
  protocol message) turned into REQUEST_FAILED;
- a protocol endpoint asked with a method it does not serve answers REQUEST_FAILED (HTTP 200, so that the farmer can
  read it), not aiohttp's 405;
- what the HTTP parser itself refuses (a bad request line, headers too long ...) is answered 400 by aiohttp before
  any handler runs; its log record loses the traceback and keeps one line.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from pool.chia_adapter import ErrorResponse
from pool.http.keys import CONTEXT
from pool.protocol.errors import malformed, one_line

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The endpoints of the Pool Protocol: their answers are read by chia's farmer, which reads only HTTP 200 replies.
PROTOCOL_PATHS = frozenset(
    {"/pool_info", "/farmer", "/partial", "/v2/pool_info", "/v2/farmer", "/v2/partial", "/v2/auth"}
)
# The deepest protocol message is a partial's proof of space inside its payload inside the request: 3 levels.
MAX_JSON_DEPTH = 8
# A protocol body is a few kilobytes: a farmer sends it at once. Longer means a stalled or deliberately slow client.
BODY_READ_TIMEOUT = 10.0


async def json_body(request: web.Request) -> Any:
    """The request's body as parsed JSON; REQUEST_FAILED for anything that is not a small, shallow JSON document."""
    try:
        # aiohttp waits for a body as long as the client likes: a client trickling its body would hold a connection
        # and, for POST /partial, nothing else, since the body is read before a place among the partials in flight.
        body = await asyncio.wait_for(request.read(), BODY_READ_TIMEOUT)
    except asyncio.TimeoutError:
        raise malformed(f"the body was not received within {BODY_READ_TIMEOUT:g} s") from None
    except web.HTTPRequestEntityTooLarge:
        raise malformed(
            f"request body larger than {request.app[CONTEXT].config.partials.max_body_bytes} bytes"
        ) from None
    except ConnectionResetError:  # the client closed the connection before its body was complete
        raise malformed("the connection closed before the body was complete") from None
    except (web.RequestPayloadError, HttpProcessingError) as exc:  # a broken chunked or compressed transfer ...
        raise malformed(f"the body could not be read ({_http_error_text(exc)})") from None
    try:
        document = json.loads(body)
    except RecursionError:  # the C decoder gives up on nesting deeper than the interpreter's recursion limit
        raise malformed(f"the body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:  # not JSON, not UTF-8/16/32 (UnicodeDecodeError), or an integer of more than 4300 digits
        raise malformed("the body is not JSON") from None
    if nesting_depth(document) > MAX_JSON_DEPTH:
        raise malformed(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    return document


def nesting_depth(document: Any) -> int:
    """How many arrays and objects deep ``document`` goes (iteratively: no recursion on hostile input)."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(document, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return depth  # deep enough to refuse: no need to walk the rest
            deepest = max(deepest, depth)
            pending.extend((item, depth) for item in value)
    return deepest


@web.middleware
async def protocol_methods(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A protocol endpoint asked with a method it does not serve: REQUEST_FAILED, readable by a farmer."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as exc:
        if request.path not in PROTOCOL_PATHS:
            raise
        error = malformed(f"{one_line(request.method, 16)} is not served on {request.path}")
        log.debug("%s: %s", request.path, error.message)
        reply: ErrorResponse = error.response()
        return web.json_response(reply.to_json_dict(), headers={"Allow": ",".join(sorted(exc.allowed_methods))})


def _http_error_text(error: BaseException) -> str:
    """What aiohttp's parser found wrong, in one line (a payload error carries the parser's error as its cause)."""
    cause = error.__cause__ if isinstance(error, web.RequestPayloadError) else error
    message = cause.message if isinstance(cause, HttpProcessingError) else str(cause)
    return one_line(message or type(cause).__name__, 120)


class _OneLineParserErrors(logging.Filter):
    """aiohttp logs every request its parser refuses, and every unread body that turns out broken, with a
    traceback; one line says all there is to say."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, web.RequestPayloadError):
            # A broken body aiohttp reads out after the answer: the handler refused it already, or had no use for it.
            return False
        if isinstance(error, HttpProcessingError):
            context = one_line(record.getMessage(), 80)
            record.msg, record.args = "%s: %s", (context, _http_error_text(error))
            record.exc_info = None
            record.exc_text = None
            if record.levelno > logging.INFO:
                record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_PARSER_FILTER = _OneLineParserErrors()


def quiet_http_parser_errors() -> None:
    """Install the one-line filter on aiohttp's server logger (once per process; idempotent)."""
    logging.getLogger("aiohttp.server").addFilter(_PARSER_FILTER)
