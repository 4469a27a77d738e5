"""End-to-end journeys through the demo stack (auth, backend, PostgreSQL, Redis).

Each journey runs against ``dockyard_stack``, the stack of this test session in its own berth,
and reaches every service through the berth's ports, never through the fixed ports of the
compose files.
"""
