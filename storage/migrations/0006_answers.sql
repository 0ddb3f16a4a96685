-- What a person is told after a turn that wrote something (above all a new report's secret
-- code): sealed in the same transaction as the turn, and deleted once it has gone out, so a
-- crash before then does not lose it. Found by the chat's keyed hash;
-- the chat, the messages and the exact expiry are inside the ciphertext. "sent": how many of
-- its parts are already out. "id" is the bot's handle, chosen at random; the rowid keeps the order.
CREATE TABLE answers (
    id         INTEGER NOT NULL UNIQUE,
    chat_key   BLOB NOT NULL,
    payload    BLOB NOT NULL,
    sent       INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL   -- day only
);
CREATE INDEX answers_chat ON answers (chat_key);
