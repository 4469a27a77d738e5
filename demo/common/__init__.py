"""Code shared by the demo services: structured errors and the PostgreSQL pool."""
