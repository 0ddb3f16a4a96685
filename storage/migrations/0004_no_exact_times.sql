-- No exact time beside a reference or a chat key: days only. Exact expiry of a draft moves
-- inside its encrypted payload; delivery retries are scheduled in memory.
UPDATE audit SET at = at - (at % 86400);
DELETE FROM audit WHERE reference IS NOT NULL AND reference NOT IN (SELECT reference FROM reports);
UPDATE deliveries SET created_at = created_at - (created_at % 86400), next_attempt = 0;
UPDATE reports SET expires_at = ((expires_at + 86399) / 86400) * 86400;
UPDATE drafts SET expires_at = ((expires_at + 86399) / 86400) * 86400;
UPDATE chat_messages SET at = at - (at % 86400);

-- A relay can be found by its chat's keyed hash, so a quick exit can hold what staff send.
ALTER TABLE relays ADD COLUMN chat_key BLOB;
ALTER TABLE relays ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
CREATE INDEX relays_chat ON relays (chat_key);

-- The bot's own messages in the staff chat, by reference, so a withdrawn report's summary can
-- be deleted there. "shared": the message also holds other summaries (sent combined).
CREATE TABLE staff_messages (
    reference  TEXT NOT NULL,
    chat_id    INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    shared     INTEGER NOT NULL DEFAULT 0,
    day        INTEGER NOT NULL,
    PRIMARY KEY (reference, message_id)
) WITHOUT ROWID;
