"""Integration tests against the real Docker engine, each in a project of its own; nothing may leak."""
