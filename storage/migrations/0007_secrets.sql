-- Secrets of this store, sealed like everything else (and rotated with it): the key of the
-- secret codes' tags, so nobody without it can choose wrong codes that share a report's tag.
CREATE TABLE secrets (
    name   TEXT PRIMARY KEY,
    sealed BLOB NOT NULL
);
