"""A simulated Chia chain (node, wallets, farmer) for the pool's tests and demo.

``world.World`` composes the parts, one module each: ``network`` (the devnet's name and consensus constants), ``base``
(state the parts share), ``chain`` (blocks, reorgs, signage points), ``wallets`` (pool and farmer wallets, PlotNFTs),
``plots`` (pool plots and their proofs), ``farmer`` (chia's farmer and harvester). ``session.Devnet`` runs a whole
pool on a World (the demo and the end-to-end tests); ``pool_config`` builds the pool's configuration for one.
"""
