"""A farmer's settings on its page: a minimum payout, a fixed difficulty, a notification webhook.

The form posts to /login/settings with the session's cookie and a CSRF token derived from the session's own secret
token (an HMAC of it): a page of another site can make the browser send the cookie (a top-level POST), but cannot read
the token, so a POST without it is refused (403) and changes nothing. Values are checked against the pool's bounds:
a minimum payout of at least ``payouts.min_payment``, a difficulty between ``difficulty.minimum`` and
``difficulty.maximum``, a webhook the pool may call (pool/webhooks.py). Every change is recorded with its time by the
store in the same transaction, in the farmer's history (``farmer_history``), and listed on the page. The payout loop
pays a farmer only once its owed balance reaches its minimum; the difficulty loop holds a farmer with a preset at that
difficulty.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pool.config import PoolConfig
from pool.store.models import FarmerChange, FarmerSettings
from pool.webhooks import WebhookRefused, check_webhook_url

SETTINGS_PATH = "/login/settings"
CSRF_FIELD = "csrf_token"
MOJOS_PER_XCH = 10**12
# The most mojos a minimum payout may be: the stores keep amounts as signed 64-bit integers (about 9.2 million XCH,
# more than a farmer is ever owed).
MAX_MIN_PAYOUT = 2**63 - 1
_XCH = re.compile(r"^\s*([0-9]{1,9})(?:\.([0-9]{1,12}))?\s*$")
_INTEGER = re.compile(r"^\s*([0-9]{1,19})\s*$")


def csrf_token(session_token: str) -> str:
    """The form's token for a session: only a page holding the session's secret (the pool's own) can know it."""
    return hmac.new(session_token.encode(), b"farmer settings form", hashlib.sha256).hexdigest()


def csrf_ok(session_token: str, sent: str | None) -> bool:
    # compare_digest raises on text that is not ASCII (a token never is): such a post is refused like any wrong one.
    return sent is not None and sent.isascii() and hmac.compare_digest(csrf_token(session_token), sent)


def xch_text(mojos: int | None) -> str:
    """Mojos as an XCH amount to type in again: 1500000000000 -> '1.5'; None -> ''."""
    if mojos is None:
        return ""
    whole, fraction = divmod(mojos, MOJOS_PER_XCH)
    return f"{whole}.{fraction:012d}".rstrip("0").rstrip(".")


def parse_xch(text: str) -> int:
    """An XCH amount typed in, exactly as mojos (no float); ValueError if it is not one."""
    match = _XCH.match(text)
    if match is None:
        raise ValueError("an amount in XCH, such as 0.5 (at most 12 decimals)")
    whole, fraction = match.group(1), match.group(2) or ""
    return int(whole) * MOJOS_PER_XCH + int(fraction.ljust(12, "0"))


@dataclass(frozen=True)
class SettingsView:
    min_payout: str  # XCH, as typed in the form ('' for the pool's)
    difficulty_preset: str
    webhook_url: str
    csrf_token: str
    pool_min_payout: int  # mojos
    difficulty_minimum: int
    difficulty_maximum: int
    changes: list[FarmerChange]
    errors: list[str] = field(default_factory=list)
    saved: bool = False


def settings_view(
    config: PoolConfig,
    settings: FarmerSettings,
    changes: list[FarmerChange],
    session_token: str,
    *,
    form: Mapping[str, str] | None = None,
    errors: list[str] | None = None,
    saved: bool = False,
) -> SettingsView:
    """The form as stored, or as sent with ``errors`` (so the farmer corrects what it typed)."""
    if form is not None:
        values = (form.get("min_payout", ""), form.get("difficulty_preset", ""), form.get("webhook_url", ""))
    else:
        preset = "" if settings.difficulty_preset is None else str(settings.difficulty_preset)
        values = (xch_text(settings.min_payout), preset, settings.webhook_url or "")
    return SettingsView(
        *values,
        csrf_token=csrf_token(session_token),
        pool_min_payout=config.payouts.min_payment,
        difficulty_minimum=config.difficulty.minimum,
        difficulty_maximum=config.difficulty.maximum,
        changes=changes,
        errors=errors or [],
        saved=saved,
    )


def parse_settings(
    config: PoolConfig, current: FarmerSettings, form: Mapping[str, str]
) -> tuple[FarmerSettings, list[str]]:
    """The settings a form asks for, and what is wrong with it (nothing is saved unless the list is empty). An
    empty field means the pool's default."""
    errors = []
    min_payout = difficulty = url = None
    text = form.get("min_payout", "").strip()
    if text:
        try:
            min_payout = parse_xch(text)
        except ValueError as exc:
            errors.append(f"Minimum payout: {exc}.")
        else:
            if min_payout < config.payouts.min_payment:
                errors.append(f"Minimum payout: at least the pool's, {xch_text(config.payouts.min_payment)} XCH.")
            elif min_payout > MAX_MIN_PAYOUT:
                errors.append(f"Minimum payout: at most {xch_text(MAX_MIN_PAYOUT)} XCH.")
    text = form.get("difficulty_preset", "").strip()
    if text:
        match = _INTEGER.match(text)
        low, high = config.difficulty.minimum, config.difficulty.maximum
        if match is None or not low <= int(match.group(1)) <= high:
            errors.append(f"Difficulty: a whole number from {low} to {high}.")
        else:
            difficulty = int(match.group(1))
    text = form.get("webhook_url", "").strip()
    if text:
        try:
            url = check_webhook_url(text, config.notifications.allow_private_webhooks)
        except WebhookRefused as exc:
            errors.append(f"Webhook: {exc}.")
    chosen = FarmerSettings(current.launcher_id, min_payout, difficulty, url, current.updated_at)
    return chosen, errors
