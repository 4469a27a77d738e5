"""The invoke program and its tasks: doors onto use-case functions."""
