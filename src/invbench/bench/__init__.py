"""Benchmark infrastructure: the SQLite store and the runner (the cache is core: invbench.cache)."""

from invbench.bench.store import Store, spec_hash, versions
from invbench.cache import FORMAT_VERSION, Cache

__all__ = ["FORMAT_VERSION", "Cache", "Store", "spec_hash", "versions"]
