-- Deliveries replace the first outbox: everything sent on a person's behalf or to them about
-- a report (the summary, a withdrawal notice, relayed messages) waits here until delivered.
-- Rows carry encrypted structured data; text is rendered when sent. No foreign key to reports:
-- a withdrawal notice must outlive the report it withdraws.
DROP TABLE outbox;
CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY,
    reference    TEXT NOT NULL,
    destination  TEXT NOT NULL,          -- staff_chat | email | person
    kind         TEXT NOT NULL,          -- summary | withdrawn | relay | answer | ack | closed
    payload      BLOB NOT NULL,          -- encrypted JSON; emptied once sent
    status       TEXT NOT NULL DEFAULT 'pending',   -- pending | sending | sent | failed
    attempts     INTEGER NOT NULL DEFAULT 0,
    maybe_sent   INTEGER NOT NULL DEFAULT 0,        -- a crash interrupted a send
    next_attempt INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt);
CREATE INDEX deliveries_reference ON deliveries (reference);

-- Relay links: which chat answers for a report whose sender allowed replies. The chat is
-- encrypted; the link is erased when staff close the report or the person withdraws it.
CREATE TABLE relays (
    reference TEXT PRIMARY KEY,
    chat      BLOB NOT NULL
) WITHOUT ROWID;
