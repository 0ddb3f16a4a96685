"""The web inbox for support workers and SOIT contacts (`reachable staff-web`)."""
