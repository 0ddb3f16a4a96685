-- Updates already handled (Telegram redelivers unconfirmed ones after a restart). Ids only.
CREATE TABLE seen_updates (
    channel   TEXT NOT NULL,
    update_id INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (channel, update_id)
) WITHOUT ROWID;
CREATE INDEX seen_updates_at ON seen_updates (at);

-- Message ids of a conversation, both sides, for the quick exit. Kept 48 hours at most:
-- after that Telegram no longer lets a bot delete them. Never linked to a report.
CREATE TABLE chat_messages (
    chat_key   BLOB NOT NULL,
    message_id INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (chat_key, message_id)
) WITHOUT ROWID;
CREATE INDEX chat_messages_at ON chat_messages (at);
