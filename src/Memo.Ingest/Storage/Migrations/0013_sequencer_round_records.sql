-- Memo.Ingest schema, version 13: how far behind each shard's session is, beside the shard's event rate. Every session
-- reports the records its live rounds took on average (the same value on each row of its shards); the leader spreads
-- busy shards over the sessions only while one of them cannot keep up, and keeps them on one session otherwise
-- (Sequencing/ShardAssignment.cs, docs/DECISIONS.md 38).
ALTER TABLE sequencer_shards ADD COLUMN round_records real NOT NULL DEFAULT 0;
