"""clusterdb's benchmarks (`make bench`): clusterdb against the vendor drivers and their peers.

``bench/run.py`` is the entry point; :mod:`bench.stats` holds the pure statistics helpers.
"""
