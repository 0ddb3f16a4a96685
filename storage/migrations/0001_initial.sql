-- Drafts: unfinished conversations, found by a keyed hash of the chat, encrypted, expiring.
CREATE TABLE drafts (
    chat_key   BLOB PRIMARY KEY,
    payload    BLOB NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX drafts_expiry ON drafts (expires_at);

-- Reports: consented summaries. Content encrypted; the code only as a slow hash.
CREATE TABLE reports (
    reference     TEXT PRIMARY KEY,
    summary       BLOB NOT NULL,
    code_tag      BLOB NOT NULL,
    code_hash     TEXT NOT NULL,
    keep          INTEGER NOT NULL,
    send_to       TEXT,
    allow_reply   INTEGER NOT NULL,
    status        TEXT NOT NULL,
    created_on    TEXT NOT NULL,   -- day only
    expires_at    INTEGER NOT NULL,
    version       INTEGER NOT NULL
);
CREATE INDEX reports_code_tag ON reports (code_tag);
CREATE INDEX reports_expiry ON reports (expires_at);

-- Outbox: forwards waiting for delivery, written in the same transaction as the report.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY,
    reference     TEXT NOT NULL REFERENCES reports (reference) ON DELETE CASCADE,
    destination   TEXT NOT NULL,
    payload       BLOB NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending',
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  INTEGER NOT NULL,
    UNIQUE (reference, destination)
);
CREATE INDEX outbox_due ON outbox (status, next_attempt);

-- Audit: what happened and when, never what anyone wrote or who they are.
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    reference TEXT
);

-- Counters: category x month, kept after reports are purged.
CREATE TABLE counters (
    category TEXT NOT NULL,
    month    TEXT NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (category, month)
) WITHOUT ROWID;
