namespace Memo.Ingest.Storage;

/// <summary>
/// The SQL of one group-commit transaction. A writer COPYs every record of a batch into <c>memo_stage</c> (binary
/// COPY, one round trip), then runs <see cref="Apply"/> as one NpgsqlBatch and commits.
///
/// Ordering invariant: <see cref="LockAccounts"/> takes the row lock of every account in the batch, in account order
/// (so two writers can never deadlock on each other), before any seq is read. Each later statement runs under READ
/// COMMITTED with a fresh snapshot taken after the lock was granted, so it sees everything the previous holder
/// committed; the lock is held until COMMIT, so seqs of one account become visible strictly in seq order.
///
/// Idempotence: records already stored, and repeats within the batch, are filtered out before seqs are numbered, so
/// a redelivered webhook costs no seq and changes nothing; the unique keys back this up.
/// </summary>
internal static class IngestSql
{
    /// <summary>Session-local staging tables, created once per writer connection and emptied at every commit.</summary>
    public const string CreateStagingTables = """
        CREATE TEMP TABLE IF NOT EXISTS memo_stage (
            ord int NOT NULL, kind smallint NOT NULL, account text, display_phone text, waba_id text,
            id text, wa_id text, ts bigint, type text, body text, context_id text, errors jsonb, payload jsonb
        ) ON COMMIT DELETE ROWS;
        CREATE TEMP TABLE IF NOT EXISTS memo_events (
            account text NOT NULL, seq bigint NOT NULL, kind smallint NOT NULL, ord int NOT NULL,
            key text NOT NULL, status text, ts bigint
        ) ON COMMIT DELETE ROWS;
        """;

    public const string CopyStage = """
        COPY memo_stage (ord, kind, account, display_phone, waba_id, id, wa_id, ts, type, body, context_id, errors, payload)
        FROM STDIN (FORMAT BINARY)
        """;

    /// <summary>Locks the batch's accounts (creating new ones); must run before any seq is read.</summary>
    public const string LockAccounts = """
        INSERT INTO accounts AS a (phone_number_id, display_phone_number, waba_id)
        SELECT DISTINCT ON (account) account, display_phone, waba_id
        FROM memo_stage
        WHERE kind IN (1, 2, 3)
        ORDER BY account, ord
        ON CONFLICT (phone_number_id) DO UPDATE
        SET display_phone_number = COALESCE(EXCLUDED.display_phone_number, a.display_phone_number),
            waba_id = COALESCE(EXCLUDED.waba_id, a.waba_id)
        """;

    /// <summary>
    /// Decides which records change anything and numbers them: per account, in arrival order (ord), continuing from
    /// accounts.last_seq. A conversation event follows the last new message of its contact.
    /// </summary>
    public const string PlanEvents = """
        WITH new_messages AS (
            SELECT DISTINCT ON (s.account, s.id) s.account, s.id, s.wa_id, s.ord
            FROM memo_stage s
            WHERE s.kind = 1
              AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.account = s.account AND m.wamid = s.id AND m.payload IS NOT NULL)
            ORDER BY s.account, s.id, s.ord
        ), new_statuses AS (
            SELECT DISTINCT ON (s.account, s.id, s.type, s.ts) s.account, s.id, s.type, s.ts, s.ord
            FROM memo_stage s
            WHERE s.kind = 2
              AND NOT EXISTS (SELECT 1 FROM message_statuses h
                              WHERE h.account = s.account AND h.wamid = s.id AND h.status = s.type AND h.ts = s.ts)
            ORDER BY s.account, s.id, s.type, s.ts, s.ord
        ), changed_contacts AS (
            SELECT c.account, c.wa_id, c.ord
            FROM (SELECT DISTINCT ON (s.account, s.wa_id) s.account, s.wa_id, s.body, s.ord
                  FROM memo_stage s WHERE s.kind = 3
                  ORDER BY s.account, s.wa_id, s.ord DESC) c
            WHERE NOT EXISTS (SELECT 1 FROM contacts k
                              WHERE k.account = c.account AND k.wa_id = c.wa_id AND k.profile_name IS NOT DISTINCT FROM c.body)
        ), touched_conversations AS (
            SELECT account, wa_id, max(ord) AS ord FROM new_messages WHERE wa_id IS NOT NULL GROUP BY account, wa_id
        ), planned AS (
            SELECT account, 1::smallint AS kind, ord, id AS key, NULL::text AS status, NULL::bigint AS ts FROM new_messages
            UNION ALL SELECT account, 2::smallint, ord, id, type, ts FROM new_statuses
            UNION ALL SELECT account, 3::smallint, ord, wa_id, NULL, NULL FROM changed_contacts
            UNION ALL SELECT account, 4::smallint, ord, wa_id, NULL, NULL FROM touched_conversations
        )
        INSERT INTO memo_events (account, seq, kind, ord, key, status, ts)
        SELECT p.account, a.last_seq + row_number() OVER (PARTITION BY p.account ORDER BY p.ord, p.kind), p.kind, p.ord, p.key, p.status, p.ts
        FROM planned p JOIN accounts a ON a.phone_number_id = p.account
        """;

    /// <summary>New inbound messages. A conflict can only be an outbound placeholder made from an earlier status:
    /// it is filled in (its status is kept).</summary>
    public const string InsertMessages = """
        INSERT INTO messages AS m (account, wamid, seq, direction, from_wa_id, ts, type, body, context_id, payload)
        SELECT e.account, e.key, e.seq, 'inbound', s.wa_id, s.ts, s.type, s.body, s.context_id, s.payload
        FROM memo_events e JOIN memo_stage s ON s.ord = e.ord
        WHERE e.kind = 1
        ON CONFLICT (account, wamid) DO UPDATE
        SET seq = EXCLUDED.seq, direction = 'inbound', from_wa_id = EXCLUDED.from_wa_id, ts = EXCLUDED.ts,
            type = EXCLUDED.type, body = EXCLUDED.body, context_id = EXCLUDED.context_id, payload = EXCLUDED.payload
        """;

    public const string InsertStatusHistory = """
        INSERT INTO message_statuses (account, wamid, status, ts, seq, recipient_id, errors, payload)
        SELECT e.account, e.key, e.status, e.ts, e.seq, s.wa_id, s.errors, s.payload
        FROM memo_events e JOIN memo_stage s ON s.ord = e.ord
        WHERE e.kind = 2
        """;

    /// <summary>Moves each message's current status up the rank ladder only; a status for a message never seen
    /// creates an outbound row so that it is not lost.</summary>
    public const string AdvanceMessageStatus = """
        INSERT INTO messages AS m (account, wamid, seq, direction, to_wa_id, status, status_rank, status_ts, status_errors)
        SELECT DISTINCT ON (e.account, e.key)
               e.account, e.key, e.seq, 'outbound', s.wa_id, e.status, memo_status_rank(e.status), e.ts, s.errors
        FROM memo_events e JOIN memo_stage s ON s.ord = e.ord
        WHERE e.kind = 2
        ORDER BY e.account, e.key, memo_status_rank(e.status) DESC, e.ts DESC, e.seq DESC
        ON CONFLICT (account, wamid) DO UPDATE
        SET status = EXCLUDED.status, status_rank = EXCLUDED.status_rank, status_ts = EXCLUDED.status_ts,
            status_errors = COALESCE(EXCLUDED.status_errors, m.status_errors), seq = GREATEST(EXCLUDED.seq, m.seq),
            to_wa_id = COALESCE(m.to_wa_id, EXCLUDED.to_wa_id)
        WHERE m.status_rank IS NULL OR EXCLUDED.status_rank > m.status_rank
        """;

    public const string UpsertContacts = """
        INSERT INTO contacts AS c (account, wa_id, profile_name, seq)
        SELECT e.account, e.key, s.body, e.seq
        FROM memo_events e JOIN memo_stage s ON s.ord = e.ord
        WHERE e.kind = 3
        ON CONFLICT (account, wa_id) DO UPDATE
        SET profile_name = EXCLUDED.profile_name, seq = EXCLUDED.seq, updated_at = now()
        """;

    /// <summary>Adds this batch's new inbound messages to their conversations; the last message is the latest by
    /// Meta's timestamp, so a late arrival of an older message does not replace the preview.</summary>
    public const string UpsertConversations = """
        WITH inbound AS (
            SELECT m.account, s.wa_id, s.id, s.ts, s.type, s.body,
                   count(*) OVER (PARTITION BY m.account, s.wa_id) AS n,
                   row_number() OVER (PARTITION BY m.account, s.wa_id ORDER BY s.ts DESC, s.ord DESC) AS rn
            FROM memo_events m JOIN memo_stage s ON s.ord = m.ord
            WHERE m.kind = 1
        )
        INSERT INTO conversations AS c (account, wa_id, seq, message_count, last_message_wamid, last_message_at,
                                        last_message_type, last_message_preview)
        SELECT e.account, e.key, e.seq, i.n, i.id, i.ts, i.type, left(i.body, 200)
        FROM memo_events e JOIN inbound i ON i.account = e.account AND i.wa_id = e.key AND i.rn = 1
        WHERE e.kind = 4
        ON CONFLICT (account, wa_id) DO UPDATE
        SET seq = EXCLUDED.seq,
            message_count = c.message_count + EXCLUDED.message_count,
            last_message_wamid = CASE WHEN EXCLUDED.last_message_at >= c.last_message_at THEN EXCLUDED.last_message_wamid ELSE c.last_message_wamid END,
            last_message_type = CASE WHEN EXCLUDED.last_message_at >= c.last_message_at THEN EXCLUDED.last_message_type ELSE c.last_message_type END,
            last_message_preview = CASE WHEN EXCLUDED.last_message_at >= c.last_message_at THEN EXCLUDED.last_message_preview ELSE c.last_message_preview END,
            last_message_at = GREATEST(EXCLUDED.last_message_at, c.last_message_at),
            updated_at = now()
        """;

    public const string AdvanceAccounts = """
        UPDATE accounts a SET last_seq = x.max_seq
        FROM (SELECT account, max(seq) AS max_seq FROM memo_events GROUP BY account) x
        WHERE a.phone_number_id = x.account
        """;

    public const string InsertAccountUpdates = """
        INSERT INTO account_updates (waba_id, phone_number_id, field, payload, payload_md5)
        SELECT waba_id, account, type, payload, md5(COALESCE(payload::text, ''))
        FROM memo_stage WHERE kind = 4
        ON CONFLICT DO NOTHING
        """;

    /// <summary>Appends every event to the durable log that live streams replay from.</summary>
    public const string InsertEventLog = """
        INSERT INTO account_events (account, seq, kind, key, status, ts)
        SELECT account, seq, kind, key, status, ts FROM memo_events
        """;

    /// <summary>
    /// The batch's events, per account in seq order. Only numbers come back: the writer finds each event's text
    /// (account, key, status) in the staged record at <c>ord</c>, so reading the result allocates nothing per event.
    /// </summary>
    public const string ListEvents = "SELECT ord, seq, kind FROM memo_events ORDER BY account, seq";

    /// <summary>In execution order; <see cref="LockAccounts"/> must stay first.</summary>
    public static readonly string[] Apply =
    [
        LockAccounts,
        PlanEvents,
        InsertMessages,
        InsertStatusHistory,
        AdvanceMessageStatus,
        UpsertContacts,
        UpsertConversations,
        AdvanceAccounts,
        InsertAccountUpdates,
        InsertEventLog,
        ListEvents,
    ];
}
