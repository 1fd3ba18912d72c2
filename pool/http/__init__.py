"""The farmer-facing HTTP layer (aiohttp)."""
