"""Benchmarks: speed and memory against named peer tools, printed as ratios (`make bench`)."""
