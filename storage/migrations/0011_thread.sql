-- The conversation between a team and a person about a case, for the staff inbox (which keeps no
-- other copy): each message sealed with the data key, only its day beside it. It goes when the
-- case is closed, withdrawn or expires.
CREATE TABLE thread (
    id        INTEGER PRIMARY KEY,
    reference TEXT NOT NULL,
    sealed    BLOB NOT NULL,
    day       INTEGER NOT NULL
);
CREATE INDEX thread_reference ON thread (reference);
