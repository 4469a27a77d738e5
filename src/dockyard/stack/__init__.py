"""One compose project in a berth: its model, override, lifecycle, readiness, evidence, fresh state."""
