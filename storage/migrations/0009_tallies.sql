-- Counts for the service's figures, one table for every dimension (harm, channel, language,
-- where, told another service, recipient, withdrawn, matched, screens shown, advice asked), by
-- month. No reference, no chat, no day: nothing here can be linked to a report or a person.
CREATE TABLE tallies (
    dimension TEXT NOT NULL,
    value     TEXT NOT NULL,
    month     TEXT NOT NULL,
    count     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (dimension, value, month)
) WITHOUT ROWID;
INSERT INTO tallies (dimension, value, month, count) SELECT 'harm', category, month, count FROM counters;
DROP TABLE counters;
