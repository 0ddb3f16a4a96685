"""What every channel shares: settings, the app, the conversation service, delivery, staff forwarding,
the transport contract and serving. Imports flows, storage and responses; never a channel or ops."""
