"""The web chat: no JavaScript needed, templates and static files beside it."""
