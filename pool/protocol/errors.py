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


def malformed(message: str) -> PoolProtocolError:
    """A request that does not parse as the protocol's message (wrong field, bad hex, not JSON ...)."""
    return PoolProtocolError(PoolErrorCode.REQUEST_FAILED, f"malformed request: {message}")
