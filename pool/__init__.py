"""A Chia Pool Protocol 1.0 pool server.

Layout (data flows downwards):
    http/       aiohttp application and request handlers (parsing, error replies)
    protocol/   validation of farmer requests: authentication, partials, difficulty
    chain/      access to the blockchain (full node + wallet) behind one interface
    loops/      background tasks: peak tracking, partial confirmation, singletons, rewards, payments
    payouts/    pure payout arithmetic (integer mojos)
    store/      durable state behind AbstractPoolStore (SQLite by default)
    chia_adapter/  the only place that imports chia-blockchain modules
"""

__version__ = "0.1.0"
