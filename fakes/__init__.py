"""The far side of the wire, faked for tests and benchmarks: a Telegram Bot API on 127.0.0.1
that the libraries' own clients talk to, an SMTP server, and the harness that runs the real bot
against them. Not installed with the package."""
