"""The parts of scripts/bench.py: timing helpers, the contenders and the workloads they run."""
