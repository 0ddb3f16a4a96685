"""Entry point and channel adapters: thin layers between a channel and the engine."""
