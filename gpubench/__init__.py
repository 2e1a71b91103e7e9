"""gpubench: honest GPU-vs-CPU benchmarks for deep-learning workloads."""

__version__ = "0.1.0"
