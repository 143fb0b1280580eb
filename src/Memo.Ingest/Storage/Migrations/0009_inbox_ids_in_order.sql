-- Memo.Ingest schema, version 9: inbox ids are handed out one at a time, in the order the writers ask for them.
-- The sequencer numbers an account's records by inbox id. With a cache of 64, each writer session took a block of 64
-- ids and used it up slowly, so a webhook acknowledged later by one writer could get a lower id than one acknowledged
-- earlier by another, and be numbered first when both waited in the inbox together (CommitOrderTests). Without a
-- cache, a webhook acknowledged after another one's 200 always has the higher ids; webhooks in flight at the same
-- time still have no order between them (Meta promises none either).
ALTER TABLE inbox ALTER COLUMN id SET CACHE 1;
