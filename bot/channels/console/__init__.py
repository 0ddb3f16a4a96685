"""The terminal channel behind `make demo`."""
