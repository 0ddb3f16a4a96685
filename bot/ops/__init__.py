"""Operators' tools: doctor, preview, checks, keys and backup. Import bot.core, never a channel."""
