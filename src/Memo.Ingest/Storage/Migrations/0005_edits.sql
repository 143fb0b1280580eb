-- Memo.Ingest schema, version 5: edits and revokes change their original (coexistence numbers, issue 16).
-- An `edit` or `revoke` message stays its own row (context_id = the original's wamid); the original now also carries
-- the newest edit's text and whether it was revoked, so a client that shows the original shows it as it is now. An
-- edit that arrives before its original makes a row known only by its edits (payload NULL), filled in when the
-- original arrives, as statuses do.
ALTER TABLE messages
    ADD COLUMN edited_text text,
    ADD COLUMN edited_ts   bigint,
    ADD COLUMN revoked     boolean NOT NULL DEFAULT false;
