"""The runtime: locks, threads, clocks and I/O over the pure core."""
