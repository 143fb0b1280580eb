-- The durable event log: one row per seq of every account, written by the same transaction that assigns the seq.
-- Rows in messages/contacts/conversations carry only their latest seq; this log keeps each event, so a live stream
-- that saw a gap (Redis pub/sub is at-most-once) or reconnected can replay exactly the seqs it missed, in order.
-- The primary key also proves the seq invariant: an account can never get the same seq twice.
CREATE TABLE account_events (
    account      text     NOT NULL,
    seq          bigint   NOT NULL,
    kind         smallint NOT NULL CHECK (kind BETWEEN 1 AND 4),
    key          text     NOT NULL,   -- wamid (message, status) or wa_id (contact, conversation)
    status       text,                -- status events: sent, delivered, read, played, failed
    ts           bigint,              -- status events: Meta's timestamp (unix seconds)
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, seq)
);
