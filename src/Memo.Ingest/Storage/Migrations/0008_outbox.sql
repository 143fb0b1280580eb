-- Memo.Ingest schema, version 8: replies leave through a durable outbox (docs/DECISIONS.md, "The outbox").
-- A reply is one outbox row (how it is being sent) and one messages row (what every client sees, in the account's
-- seq order). The messages row's key is `memo.outbox.<id>`, which the sender also passes to Meta as
-- biz_opaque_callback_data: Meta's status webhooks carry it back, so they land on this row even when the gateway died
-- before it could store the wamid Meta returned.
CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account         text   NOT NULL,
    idempotency_key text   NOT NULL,
    recipient       text   NOT NULL,          -- `to` as the client gave it
    type            text   NOT NULL,
    request         bytea  NOT NULL,          -- the client's Cloud API message body, byte for byte
    request_sha256  text   NOT NULL,          -- tells a retried request from a different one under the same key
    -- queued: waiting for its turn (also between retries); sending: handed to Meta, answer not yet stored;
    -- accepted: Meta returned its wamid; failed: Meta refused it for good, or retries ran out; unknown: the gateway
    -- stopped while the row was sending, so whether Meta took it is not known (never resent unless configured).
    state           text   NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sending', 'accepted', 'failed', 'unknown')),
    attempts        int    NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    first_attempt_at timestamptz,
    wamid           text,
    error_code      int,
    error           bytea,                    -- Meta's error object of the last attempt that failed
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account, idempotency_key)
);
-- The sender's work list: per account, its queued replies by due time. Accounts are listed by skipping through it
-- (one probe per account), so a campaign of 100,000 queued replies on one number costs the other numbers nothing.
CREATE INDEX outbox_queued ON outbox (account, next_attempt_at, id) WHERE state = 'queued';
-- The rows not yet settled, for the depth and age metrics and for finding replies cut off mid-send.
CREATE INDEX outbox_open ON outbox (state, account) WHERE state IN ('queued', 'sending', 'unknown');

ALTER TABLE messages DROP CONSTRAINT messages_origin_check;
ALTER TABLE messages ADD CONSTRAINT messages_origin_check CHECK (origin IN ('live', 'echo', 'history', 'outbox'));
-- A reply's wamid as Meta returned it (its own key is memo.outbox.<id>).
ALTER TABLE messages ADD COLUMN sent_wamid text;

-- The ladder gains the sender's states below Meta's: queued, sending, unknown (the gateway stopped mid-send),
-- accepted (Meta returned a wamid). A status webhook from Meta always moves a reply past them.
CREATE OR REPLACE FUNCTION memo_status_rank(status text) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE status
    WHEN 'queued' THEN 1
    WHEN 'sending' THEN 2
    WHEN 'unknown' THEN 3
    WHEN 'accepted' THEN 4
    WHEN 'sent' THEN 11
    WHEN 'delivered' THEN 12
    WHEN 'read' THEN 13
    WHEN 'played' THEN 14
    WHEN 'failed' THEN 20
    ELSE 0
END;
UPDATE messages SET status_rank = memo_status_rank(status) WHERE status IS NOT NULL AND status_rank IS DISTINCT FROM memo_status_rank(status);
