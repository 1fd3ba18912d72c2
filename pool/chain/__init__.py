"""Blockchain access (full node and wallet) behind the interfaces in pool.chain.interface."""
