"""One folder per channel: its adapter (translation only), its runner and its static files.
A channel imports bot.core, never another channel."""
