"""A simulated Chia chain (node, wallets, farmer) for the pool's tests and demo."""
