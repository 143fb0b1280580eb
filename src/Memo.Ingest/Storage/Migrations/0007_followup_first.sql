-- Memo.Ingest schema, version 7: a history media follow-up that arrives before its placeholder makes the row, marked
-- here; the placeholder, when it comes, brings the row's sender, time and status and leaves the media in place.
ALTER TABLE messages ADD COLUMN followup_first boolean NOT NULL DEFAULT false;
