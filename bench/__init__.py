"""Tandem's benchmark suite: protocol-level load clients and the harness that runs them.

See docs/benchmarks.md. Nothing here is imported by the application.
"""
