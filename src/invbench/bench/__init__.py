"""Benchmark infrastructure: the content-addressed cache, the SQLite store, the runner."""

from invbench.bench.cache import FORMAT_VERSION, Cache
from invbench.bench.store import Store, spec_hash, versions

__all__ = ["FORMAT_VERSION", "Cache", "Store", "spec_hash", "versions"]
