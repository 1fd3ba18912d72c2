"""Named steps at which a test can have the pool process killed on the spot (SIGKILL), to prove that a crash at the
worst moment (a transaction signed but not recorded, recorded but not pushed, pushed but not yet seen) loses nothing
and pays nothing twice.

``POOL_KILL_AT`` names the steps (comma separated, e.g. ``batch-recorded,claim-pushed``); the first time the process
reaches one of them it appends the step's name to the file ``POOL_KILL_LOG`` (if set, synced to disk, so the test
knows which step it hit) and kills itself. Without ``POOL_KILL_AT`` (always, in production) a step costs one set
look-up.
"""

from __future__ import annotations

import os
import signal

STEPS = (
    "claim-recorded",  # an absorb recorded in the store, not pushed
    "claim-pushed",  # an absorb pushed, its outcome not yet read
    "batch-signed",  # a payout transaction signed by the wallet, not recorded
    "batch-recorded",  # recorded as submitted, not pushed
    "batch-pushed",  # pushed, its outcome not yet read
    "batch-replaced",  # a new version recorded in place of the old one, not pushed
)

# Steps of the notifications' delivery, apart from STEPS (the chaos test goes through every one of those, on a pool
# that sends no notifications).
NOTIFICATION_STEPS = (
    "notification-unsent",  # an event committed to the outbox, not yet posted to a destination
    "notification-posted",  # posted and answered 2xx, the delivery not yet recorded
)

_KILL_AT = frozenset(step.strip() for step in os.environ.get("POOL_KILL_AT", "").split(",") if step.strip())


def kill_point(step: str) -> None:
    """Die here if a test asked for it (see the module's docstring)."""
    if step not in _KILL_AT:
        return
    log_path = os.environ.get("POOL_KILL_LOG")
    if log_path:
        with open(log_path, "a") as log:
            log.write(step + "\n")
            log.flush()
            os.fsync(log.fileno())
    os.kill(os.getpid(), signal.SIGKILL)
