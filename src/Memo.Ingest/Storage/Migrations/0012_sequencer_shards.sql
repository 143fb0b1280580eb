-- Memo.Ingest schema, version 12: which sequencer session each account shard is assigned to, and how busy it is.
-- The lowest live member slot (the leader) writes the assignment from the shards' recent event rates, so that a few
-- busy accounts are spread over the sessions instead of landing wherever `shard % members` puts them; every session
-- takes the shards assigned to it (the advisory lock still decides who holds one). Each owner reports its shards'
-- rates. Unlogged: it is advice, rebuilt by the leader within a second after a crash empties it, and its updates
-- (several a second) write no WAL.
CREATE UNLOGGED TABLE sequencer_shards (
    shard       int PRIMARY KEY,
    member_slot int NOT NULL,
    events_per_second real NOT NULL DEFAULT 0
);
