"""Processes that hold or guard a berth: run, the keeper, the watchdog, the Python API."""
