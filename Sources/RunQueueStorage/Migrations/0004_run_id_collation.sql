-- Run ids compare byte by byte (COLLATE "C"), whatever the database's
-- locale: the primary key is searched for every insert, every applied outbox
-- entry and every lookup, and with a locale collation (C.UTF-8 here,
-- en_US.UTF-8 on many servers) each comparison went through strcoll (seen in
-- a profile of the cycle benchmark). Ids are opaque; the only ordering that
-- depends on them is the rebuild's paging, which needs any total order.
ALTER TABLE runs ALTER COLUMN id TYPE text COLLATE "C";
