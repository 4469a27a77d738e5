"""One compose project in a berth: model, override, lifecycle, readiness by strategy, evidence, masking, fresh state."""
