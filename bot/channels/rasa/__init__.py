"""Rasa channels (WhatsApp, SMS, ...) through a rasa-sdk action server."""
