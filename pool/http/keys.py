"""Keys of the aiohttp application's shared objects (one module, so that the handler modules need not import each
other)."""

from __future__ import annotations

from aiohttp import web

from pool.chain.status import ChainStatus
from pool.context import PoolContext
from pool.http.cooldown import Cooldowns
from pool.protocol.farmers import FarmerChecks
from pool.protocol.rate_limits import RateLimits

CONTEXT = web.AppKey("context", PoolContext)
RATE_LIMITS = web.AppKey("rate_limits", RateLimits)  # the process's, shared with the protocol's checks
CHAIN_STATUS = web.AppKey("chain_status", ChainStatus)  # set when the background loops run with the app
# The client addresses refused at the connection for a while (pool/http/cooldown.py); the listening socket reads it.
COOLDOWNS = web.AppKey("cooldowns", Cooldowns)
FARMERS = web.AppKey("farmers", FarmerChecks)  # POST/PUT /farmer and the checks of GET /farmer and GET /login
# The client a request is counted under by every limit (its address, an IPv6 client's network), set by the first
# middleware (pool/http/limits.py).
CLIENT = web.RequestKey("client", str)
