-- Memo.Ingest schema, version 1.
-- Every account (phone_number_id) owns one seq space shared by its messages, statuses, contacts and conversations.
-- Seqs are allocated from accounts.last_seq while that row is locked by the writing transaction, so they become
-- visible in commit order: a reader of "seq > cursor" can never skip a row that commits later (docs/DECISIONS.md).

CREATE TABLE accounts (
    phone_number_id      text PRIMARY KEY,
    display_phone_number text,
    waba_id              text,
    last_seq             bigint NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL DEFAULT now()
);

-- One row per message: inbound messages with their raw payload, and outbound messages known only from their
-- statuses (payload NULL). "seq" moves forward whenever the row changes (for example its status advances).
CREATE TABLE messages (
    account       text NOT NULL,
    wamid         text NOT NULL,
    seq           bigint NOT NULL,
    direction     text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    from_wa_id    text,
    to_wa_id      text,
    ts            bigint,
    type          text,
    body          text,
    context_id    text,
    status        text,
    status_rank   smallint,
    status_ts     bigint,
    status_errors jsonb,
    payload       jsonb,
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, wamid),
    UNIQUE (account, seq)
);

-- Every distinct status event ever received, including those that arrive out of order.
CREATE TABLE message_statuses (
    account      text NOT NULL,
    wamid        text NOT NULL,
    status       text NOT NULL,
    ts           bigint NOT NULL,
    seq          bigint NOT NULL,
    recipient_id text,
    errors       jsonb,
    payload      jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, wamid, status, ts),
    UNIQUE (account, seq)
);

CREATE TABLE contacts (
    account      text NOT NULL,
    wa_id        text NOT NULL,
    profile_name text,
    seq          bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, wa_id),
    UNIQUE (account, seq)
);

-- The inbox view: one conversation per account and contact, fed by inbound messages.
CREATE TABLE conversations (
    account              text NOT NULL,
    wa_id                text NOT NULL,
    seq                  bigint NOT NULL,
    message_count        bigint NOT NULL,
    last_message_wamid   text,
    last_message_at      bigint,
    last_message_type    text,
    last_message_preview text,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, wa_id),
    UNIQUE (account, seq)
);

-- Changes other than messages (template status, account updates, webhook-level errors): kept whole, once.
CREATE TABLE account_updates (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    waba_id         text,
    phone_number_id text,
    field           text NOT NULL,
    payload         jsonb,
    payload_md5     text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (waba_id, phone_number_id, field, payload_md5)
);

-- How far a status has got. Statuses arrive out of order (sent after delivered, delivered after read), so the
-- current status only ever moves up this ladder. failed is terminal: once failed, it stays failed with its errors.
-- Unknown statuses rank 0: they are kept in message_statuses and never override a known one.
CREATE FUNCTION memo_status_rank(status text) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE status
    WHEN 'sent' THEN 1
    WHEN 'delivered' THEN 2
    WHEN 'read' THEN 3
    WHEN 'played' THEN 4
    WHEN 'failed' THEN 5
    ELSE 0
END;
