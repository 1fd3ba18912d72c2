"""The one exception type of the protocol layer: a refusal with a Pool Protocol error code."""

from __future__ import annotations

from pool.chia_adapter import ErrorResponse, PoolErrorCode, uint16


class PoolProtocolError(Exception):
    """A request refused with ``code``; ``message`` tells the farmer (and its log) what to fix."""

    def __init__(self, code: PoolErrorCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    def response(self) -> ErrorResponse:
        return ErrorResponse(uint16(self.code.value), self.message)


MESSAGE_LIMIT = 200  # characters of a refusal's message; it may quote what the client sent


def malformed(message: str) -> PoolProtocolError:
    """A request that does not parse as the protocol's message (wrong field, bad hex, not JSON ...)."""
    return PoolProtocolError(PoolErrorCode.REQUEST_FAILED, one_line(f"malformed request: {message}"))


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` as one short printable line: what a client sent may be quoted in a reply and in the log, and must
    neither break the log's one-line-per-record format nor make a reply or a log line as long as a request."""
    printable = "".join(char if char.isprintable() else " " for char in text[: limit + 1])
    return printable if len(printable) <= limit else printable[: limit - 3] + "..."
