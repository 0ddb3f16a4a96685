-- The same tables as SQLite's migrations 0001-0011 end with, in PostgreSQL's types. Every column
-- named sealed, payload, summary, chat or totp holds a token encrypted by the bot before it is
-- sent: the server never sees content, nor the key. No exact time beside a reference or a chat
-- key: days only (the exact expiry of a draft or an answer is inside its ciphertext).

-- Unfinished conversations, by a keyed hash of the chat.
CREATE TABLE drafts (
    chat_key   bytea PRIMARY KEY,
    payload    bytea NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX drafts_expiry ON drafts (expires_at);

-- Consented reports: content sealed; the code only as a keyed tag and a slow hash.
CREATE TABLE reports (
    reference   text PRIMARY KEY,
    summary     bytea NOT NULL,
    code_tag    bytea NOT NULL,
    code_hash   text NOT NULL,
    keep        boolean NOT NULL,
    send_to     text,
    allow_reply boolean NOT NULL,
    status      text NOT NULL,
    created_on  text NOT NULL,   -- day only
    expires_at  bigint NOT NULL,
    version     integer NOT NULL,
    seq         bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX reports_code_tag ON reports (code_tag);
CREATE INDEX reports_expiry ON reports (expires_at);

-- What happened and when (days), never what anyone wrote or who they are.
CREATE TABLE audit (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        bigint NOT NULL,
    kind      text NOT NULL,
    reference text
);

-- Updates already handled, by whichever instance: ids only, the hour they were handled.
CREATE TABLE seen_updates (
    channel   text NOT NULL,
    update_id bigint NOT NULL,
    at        bigint NOT NULL,
    PRIMARY KEY (channel, update_id)
);
CREATE INDEX seen_updates_at ON seen_updates (at);

-- The bot's message ids in a conversation, for the quick exit (48 hours at most).
CREATE TABLE chat_messages (
    chat_key   bytea NOT NULL,
    message_id bigint NOT NULL,
    at         bigint NOT NULL,
    PRIMARY KEY (chat_key, message_id)
);
CREATE INDEX chat_messages_at ON chat_messages (at);

-- Everything sent on a person's behalf or to them, until delivered; content sealed, emptied once sent.
CREATE TABLE deliveries (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reference    text NOT NULL,
    destination  text NOT NULL,
    kind         text NOT NULL,
    payload      bytea NOT NULL,
    status       text NOT NULL DEFAULT 'pending',
    attempts     integer NOT NULL DEFAULT 0,
    maybe_sent   boolean NOT NULL DEFAULT false,
    next_attempt bigint NOT NULL,
    created_at   bigint NOT NULL,
    claimed_by   text               -- the instance sending it now
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt);
CREATE INDEX deliveries_reference ON deliveries (reference);

-- Which chat answers for a report whose sender allowed replies: the chat sealed, found by its keyed hash.
CREATE TABLE relays (
    reference text PRIMARY KEY,
    chat      bytea NOT NULL,
    chat_key  bytea,
    held      boolean NOT NULL DEFAULT false
);
CREATE INDEX relays_chat ON relays (chat_key);

-- The bot's own messages in staff chats, so a withdrawn summary can be deleted there.
CREATE TABLE staff_messages (
    reference  text NOT NULL,
    chat_id    bigint NOT NULL,
    message_id bigint NOT NULL,
    shared     boolean NOT NULL DEFAULT false,
    day        bigint NOT NULL,
    PRIMARY KEY (reference, message_id)
);

-- What a person is told after a turn that wrote something, until it has gone out; seq keeps the order.
CREATE TABLE answers (
    id         bigint NOT NULL UNIQUE,
    chat_key   bytea NOT NULL,
    payload    bytea NOT NULL,
    sent       integer NOT NULL DEFAULT 0,
    expires_at bigint NOT NULL,
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    owner      text NOT NULL       -- the instance that tells it (another takes it over if that one dies)
);
CREATE INDEX answers_chat ON answers (chat_key);

-- The store's own random secrets (the code tags' key), sealed.
CREATE TABLE secrets (
    name   text PRIMARY KEY,
    sealed bytea NOT NULL
);

-- Who a person named, for matching: compared only as a keyed digest; what was typed, sealed.
CREATE TABLE identifiers (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reference text NOT NULL,
    digest    bytea NOT NULL,
    sealed    bytea NOT NULL,
    told      boolean NOT NULL DEFAULT false
);
CREATE INDEX identifiers_by_digest ON identifiers (digest);
CREATE INDEX identifiers_by_reference ON identifiers (reference);

-- Counts for the figures: no reference, no chat, no day.
CREATE TABLE tallies (
    dimension text NOT NULL,
    value     text NOT NULL,
    month     text NOT NULL,
    count     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (dimension, value, month)
);

-- Staff accounts of the web inbox, their sessions (by a hash of the token) and their audit.
CREATE TABLE staff_accounts (
    name         text PRIMARY KEY,
    role         text NOT NULL,
    password     text NOT NULL,
    totp         bytea NOT NULL,
    last_step    bigint NOT NULL DEFAULT 0,
    failures     integer NOT NULL DEFAULT 0,
    locked_until bigint NOT NULL DEFAULT 0
);
CREATE TABLE staff_sessions (
    token   bytea PRIMARY KEY,
    name    text NOT NULL REFERENCES staff_accounts (name) ON DELETE CASCADE,
    started bigint NOT NULL,
    seen    bigint NOT NULL,
    csrf    text NOT NULL
);
CREATE TABLE staff_audit (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name      text NOT NULL,
    action    text NOT NULL,
    reference text,
    at        bigint NOT NULL
);
CREATE INDEX staff_audit_at ON staff_audit (at);

-- A case's conversation between a team and a person, sealed, by day; it goes with the case.
CREATE TABLE thread (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reference text NOT NULL,
    sealed    bytea NOT NULL,
    day       bigint NOT NULL
);
CREATE INDEX thread_reference ON thread (reference);

-- Updates read from Telegram but not yet handled (the polling inbox), sealed.
CREATE TABLE inbox (
    update_id bigint PRIMARY KEY,
    body      bytea NOT NULL,
    owner     text NOT NULL         -- the instance handling it
);

-- The running instances: a random name each start, and when each last said it was alive. An
-- instance silent for long enough is taken for dead: what it claimed is taken over by the others.
CREATE TABLE instances (
    name text PRIMARY KEY,
    seen double precision NOT NULL
);
