-- Memo.Ingest schema, version 10: the history backfill's inbox records take their ids from a sequence of their own,
-- and the inbox keeps one index entry per record.
--
-- The backlog estimate of each lane is the span of ids from its oldest waiting record to the last id its lane handed
-- out (a few index probes, InboxBacklog). While both lanes shared inbox_id_seq, a backfill's records appended after
-- the oldest waiting live record counted as live, so a backfill could hold live webhooks back sooner than the live
-- backlog alone would. History ids start at 2^62, far above any live id; each lane is still in arrival order, and
-- the sequencer never takes both lanes in one statement, so ids are only ever compared within a lane. The writers
-- take history ids (and the live ids of a batch that carries history) before the batch's binary COPY, which may
-- write an identity column's values; INSERTs cannot (GENERATED ALWAYS), so they keep the live default. A binary from
-- before this version (a rolling update) still gives history records live ids: the estimate measures those against
-- the live sequence, and the sequencer takes them first, as the oldest.
--
-- The primary key goes: nothing looks a record up by id (the sequencer deletes what it took by ctid), the sequences
-- keep ids unique, and each lane's partial index (inbox_live, inbox_history) orders it. With two id ranges the
-- primary key was also the one index where live ids landed in the middle, below the history range, on every append.
CREATE SEQUENCE inbox_history_id_seq AS bigint START WITH 4611686018427387904 CACHE 1;
ALTER TABLE inbox DROP CONSTRAINT inbox_pkey;
