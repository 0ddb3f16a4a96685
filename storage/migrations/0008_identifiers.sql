-- Who a person named on their report, for matching. Only a keyed digest under the matching key
-- (kept apart from the data key) is compared; what they typed is sealed with the data key, for
-- the matching contact's notice once someone else names the same person. No time is kept: a
-- row goes when its report goes. ``told``: it is in a match the matching contact was sent.
CREATE TABLE identifiers (
    id        INTEGER PRIMARY KEY,
    reference TEXT NOT NULL,
    digest    BLOB NOT NULL,
    sealed    BLOB NOT NULL,
    told      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX identifiers_by_digest ON identifiers (digest);
CREATE INDEX identifiers_by_reference ON identifiers (reference);
