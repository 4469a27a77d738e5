"""Wait strategies: how dockyard tells that one service is ready, one strategy per module."""
