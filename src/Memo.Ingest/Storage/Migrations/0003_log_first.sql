-- Memo.Ingest schema, version 3: the log-first write path (docs/DECISIONS.md, "Log first").
-- A webhook is acknowledged once its records are in `inbox` (an append-only COPY, no account lock). Sequencers,
-- one per shard of accounts (a session advisory lock), drain the inbox in large batches: deduplicate, number, project
-- into the tables below and delete what they consumed, all in one statement. Stop every gateway of an older version
-- before this migration runs: they write jsonb payloads into columns that become bytea here.

-- Records acknowledged but not yet sequenced. Rows are deleted by the statement that projects them, so the table
-- stays small and a reader never has to find "new" rows by an id watermark (ids of concurrent appends commit out
-- of order: the same trap as seq). `shard` is computed here, once, so that every instance agrees on it.
CREATE TABLE inbox (
    id           bigint GENERATED ALWAYS AS IDENTITY (CACHE 64) PRIMARY KEY,
    shard        smallint GENERATED ALWAYS AS ((hashtext(COALESCE(account, '')) & 63)::smallint) STORED,
    kind         smallint NOT NULL CHECK (kind BETWEEN 1 AND 4),   -- 1 message, 2 status, 3 contact, 4 other change
    account      text,
    display_phone text,
    waba_id      text,
    msg_id       text,     -- message: its wamid; status: the wamid it describes
    wa_id        text,     -- message: from; status: recipient_id; contact: wa_id
    ts           bigint,
    type         text,     -- message: type; status: status; other change: its field
    body         text,
    context_id   text,
    errors       bytea,    -- status: the raw errors array
    payload      bytea,    -- the raw JSON object exactly as received
    received_at  timestamptz NOT NULL DEFAULT now()
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000, autovacuum_vacuum_insert_threshold = -1);

-- What PostgreSQL refused even after the gateway's own checks, kept with the reason instead of being retried forever.
-- stage 'ack': the whole signed webhook body; stage 'sequencer': one inbox record (its columns in `record`, its raw
-- JSON object in `body`).
CREATE TABLE dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stage       text NOT NULL CHECK (stage IN ('ack', 'sequencer')),
    sqlstate    text NOT NULL,
    reason      text NOT NULL,
    account     text,
    record      jsonb,
    body        bytea,
    received_at timestamptz,
    dead_at     timestamptz NOT NULL DEFAULT now()
);

-- Raw JSON is kept byte for byte: jsonb cannot hold \u0000 and costs a parse per message on the write path.
ALTER TABLE messages
    ALTER COLUMN payload TYPE bytea USING convert_to(payload::text, 'UTF8'),
    ALTER COLUMN status_errors TYPE bytea USING convert_to(status_errors::text, 'UTF8');
ALTER TABLE message_statuses
    ALTER COLUMN payload TYPE bytea USING convert_to(payload::text, 'UTF8'),
    ALTER COLUMN errors TYPE bytea USING convert_to(errors::text, 'UTF8');
ALTER TABLE account_updates
    ALTER COLUMN payload TYPE bytea USING convert_to(payload::text, 'UTF8');

-- Sync pages and replays are served from the event log's primary key (account, seq), so the projections need no
-- seq index: a status advance or a conversation update then changes no indexed column and can be a HOT update
-- (fillfactor leaves room on the page for it). Contact and conversation pages get partial indexes of the log, so a
-- page of them does not scan the message events in between.
ALTER TABLE messages DROP CONSTRAINT messages_account_seq_key;
ALTER TABLE message_statuses DROP CONSTRAINT message_statuses_account_seq_key;
ALTER TABLE contacts DROP CONSTRAINT contacts_account_seq_key;
ALTER TABLE conversations DROP CONSTRAINT conversations_account_seq_key;
ALTER TABLE messages SET (fillfactor = 80);
ALTER TABLE conversations SET (fillfactor = 50);
ALTER TABLE contacts SET (fillfactor = 80);
ALTER TABLE accounts SET (fillfactor = 50);
CREATE INDEX account_events_contacts ON account_events (account, seq) WHERE kind = 3;
CREATE INDEX account_events_conversations ON account_events (account, seq) WHERE kind = 4;
