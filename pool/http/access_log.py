"""The access log (``logging.access_log: true``): one line per HTTP request, on the logger ``pool.access``.

``GET /farmer`` and ``GET /login`` carry a farmer's signature in their query string, so a line names the path without
it: method, path, status, duration in milliseconds, and the client address as the rate limits count it (the
``X-Forwarded-For`` of a trusted proxy read, an IPv6 client as its network; pool.http.limits). A request refused
before the limits saw it (aiohttp's parser answering 400) is named by its TCP peer.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from pool.http.keys import CLIENT
from pool.protocol.errors import one_line

ACCESS_LOGGER = "pool.access"


class AccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        client = request.get(CLIENT) or one_line(request.remote or "unknown", 64)
        self.logger.info(
            "%s %s %d %.1f ms %s",
            one_line(request.method, 16),
            one_line(request.path, 200),
            response.status,
            time * 1000,
            client,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def access_log_options(enabled: bool) -> dict[str, Any]:
    """What web.AppRunner takes for ``logging.access_log``."""
    if not enabled:
        return {"access_log": None}
    return {"access_log": logging.getLogger(ACCESS_LOGGER), "access_log_class": AccessLogger}
