"""The in-repo benchmark (``python -m pool.bench``, ``make bench``).

corpus.py builds and caches real partials on the embedded devnet; node.py runs the full node on the corpus's chain in
its own process; floor.py measures the cryptography floor; signing.py signs requests as chia's farmer does; load.py
sends them (open and closed loop); processes.py starts the node and the pool; procstat.py reads CPU and memory from
/proc; run.py runs the phases and measures them; report.py prints the table and writes the JSON.
"""
