"""The page a farmer reaches from its GUI's "login to pool" link (GET /login): who, difficulty, points."""

from __future__ import annotations

from html import escape

from pool.store.models import FarmerRecord


def login_page(pool_name: str, farmer: FarmerRecord, difficulty: int) -> str:
    launcher = farmer.launcher_id.hex()
    member = "yes" if farmer.is_pool_member else "no (the PlotNFT no longer farms to this pool)"
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{escape(pool_name)}: farmer {launcher[:12]}…</title></head>
<body>
<h1>{escape(pool_name)}</h1>
<table>
<tr><th>Launcher id</th><td><code>{launcher}</code></td></tr>
<tr><th>Difficulty</th><td>{difficulty}</td></tr>
<tr><th>Points</th><td>{farmer.points}</td></tr>
<tr><th>Payout instructions</th><td><code>{escape(farmer.payout_instructions)}</code></td></tr>
<tr><th>Pool member</th><td>{member}</td></tr>
</table>
</body>
</html>
"""
