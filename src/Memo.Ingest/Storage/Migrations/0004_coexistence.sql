-- Memo.Ingest schema, version 4: coexistence numbers (WhatsApp Business app + Cloud API, ../shared/COEXISTENCE-FACTS.md).
-- Messages now come from three places (live `messages`, `smb_message_echoes`, `history`); the phone's contact book
-- (`smb_app_state_sync`) and the history backfill's progress are projected too. docs/API.md documents the fields.

-- Inbox: kinds 5 (contact book entry) and 6 (history sync progress); for messages, where they came from and who the
-- other party is. flags: bits 0-1 the origin (0 live, 1 echo, 2 history), 4 the business sent it.
ALTER TABLE inbox DROP CONSTRAINT inbox_kind_check;
ALTER TABLE inbox ADD CONSTRAINT inbox_kind_check CHECK (kind BETWEEN 1 AND 6);
ALTER TABLE inbox
    ADD COLUMN flags   smallint NOT NULL DEFAULT 0,
    ADD COLUMN contact text,   -- message: the other party's number, normalised; contact book: the contact's
    ADD COLUMN to_id   text,   -- message: `to` as delivered; contact book: `phone_number` as delivered
    ADD COLUMN hstatus text;   -- history message: history_context.status

-- Messages: origin, and the conversation they belong to (the other party, normalised). A media follow-up of the
-- history completes its placeholder's row in place; an edit or a revoke is its own row whose context_id is the
-- original's wamid.
ALTER TABLE messages
    ADD COLUMN origin  text NOT NULL DEFAULT 'live' CHECK (origin IN ('live', 'echo', 'history')),
    ADD COLUMN contact text;

-- Only live inbound messages count as unread (history and echoes never do); last_message_* move only forward by the
-- message's own timestamp, so six-month-old history never reorders the inbox.
ALTER TABLE conversations ADD COLUMN unread_count bigint NOT NULL DEFAULT 0;

-- The phone's contact book, one row per normalised number. Entries are applied in their own timestamp order: an
-- older entry that arrives late changes nothing. A removal keeps the last known names.
CREATE TABLE contact_book (
    account      text    NOT NULL,
    contact      text    NOT NULL,   -- digits, normalised
    phone_number text    NOT NULL,   -- as the phone sent it
    full_name    text,
    first_name   text,
    removed      boolean NOT NULL DEFAULT false,
    book_ts      bigint  NOT NULL,   -- metadata.timestamp of the entry applied last
    seq          bigint  NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, contact)
) WITH (fillfactor = 80);

-- The history backfill per account: every chunk received (repeats collapse), and the account's state.
CREATE TABLE history_chunks (
    account     text    NOT NULL,
    phase       bigint  NOT NULL,
    chunk_order bigint  NOT NULL,
    progress    smallint,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, phase, chunk_order)
);

ALTER TABLE accounts
    ADD COLUMN history_state    text CHECK (history_state IN ('receiving', 'completed', 'declined')),
    ADD COLUMN history_progress smallint,
    ADD COLUMN history_phase    bigint,
    ADD COLUMN history_chunk    bigint,
    ADD COLUMN history_errors   bytea,
    ADD COLUMN history_seq      bigint;

-- Event kinds 5 (contact book entry, key = normalised number), 6 (history sync state, key = 'history') and 7 (a
-- message's content changed in place, key = wamid: a history placeholder completed by its media follow-up).
ALTER TABLE account_events DROP CONSTRAINT account_events_kind_check;
ALTER TABLE account_events ADD CONSTRAINT account_events_kind_check CHECK (kind BETWEEN 1 AND 7);
CREATE INDEX account_events_contact_book ON account_events (account, seq) WHERE kind = 5;
