"""Berths: file-locked slots of the host's pool, their lease records and port blocks."""
