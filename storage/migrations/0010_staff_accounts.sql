-- Staff accounts for the web inbox (reachable staff add): a name, a role, an Argon2id hash of the
-- password, the TOTP secret sealed with the data key, the last TOTP step accepted (a code works
-- once), and failed sign-ins for the lockout. Sessions by a hash of the cookie's token. The audit
-- of who opened or did what to which case: kept for the retention period only.
CREATE TABLE staff_accounts (
    name         TEXT PRIMARY KEY,
    role         TEXT NOT NULL,
    password     TEXT NOT NULL,
    totp         BLOB NOT NULL,
    last_step    INTEGER NOT NULL DEFAULT 0,
    failures     INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE staff_sessions (
    token   BLOB PRIMARY KEY,
    name    TEXT NOT NULL REFERENCES staff_accounts (name) ON DELETE CASCADE,
    started INTEGER NOT NULL,
    seen    INTEGER NOT NULL,
    csrf    TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE staff_audit (
    id        INTEGER PRIMARY KEY,
    name      TEXT NOT NULL,
    action    TEXT NOT NULL,
    reference TEXT,
    at        INTEGER NOT NULL
);
CREATE INDEX staff_audit_at ON staff_audit (at);
