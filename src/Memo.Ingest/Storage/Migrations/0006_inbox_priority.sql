-- Memo.Ingest schema, version 6: live records are sequenced before the history backfill (coexistence numbers).
-- The sequencer takes the live records waiting first, then a bounded slice of history; each kind has its own partial
-- index in id order, so neither probe walks past the other kind's records. The predicates are the ones the sequencer
-- and the backlog estimate use, word for word (a partial index is only used for a query that implies its predicate).
CREATE INDEX inbox_live ON inbox (id) WHERE flags & 3 <> 2;
CREATE INDEX inbox_history ON inbox (id) WHERE flags & 3 = 2;
