"""The demo's backend: a per-user notes API with live change events."""
