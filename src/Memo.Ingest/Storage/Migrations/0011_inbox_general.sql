-- Memo.Ingest schema, version 11: live inbox records that need the sequencer's general statement, found by one probe.
-- Live traffic without coexistence records (inbound messages, statuses, contact profiles, account changes) is
-- sequenced by a smaller statement (SequencerSql.DrainPlain) that takes the oldest live records up to the first one
-- this index holds: contact book and history sync state (kinds 5 and 6), echoes and replies (flags), edits, revokes,
-- media placeholders, and the fields only those carry. Such records are few, so the index costs the appends little.
-- The predicate is word for word SequencerSql.NeedsGeneralStatement; a plan that cannot use the index scans the inbox
-- (WritePathTests checks the plan).
CREATE INDEX inbox_general ON inbox (id)
    WHERE flags & 3 <> 2 AND (kind >= 5 OR flags <> 0 OR type IN ('edit', 'revoke', 'media_placeholder') OR hstatus IS NOT NULL OR to_id IS NOT NULL);
