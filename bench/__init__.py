"""Benchmarks and load tests: `make bench`, `make load`. They print figures; they assert nothing."""
