"""Parallel runs: shard planning, the per-shard pytest plugin, supervision, JUnit, the summary."""
