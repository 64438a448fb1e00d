"""Benchmarks of minion-daemon next to their baselines (pgbench, Perl Minion): ``bench/run``.

Not part of the test suite (pytest collects ``tests/`` only). BENCHMARKS.md describes the
method and holds the latest results.
"""
