namespace Memo.Ingest.Outbox;

/// <summary>
/// The outbox's SQL. Every change a client should see (queued, sending, accepted, failed, unknown) is appended to the
/// inbox in the same transaction as the outbox row's change, as a record the sequencer numbers like any webhook's:
/// the reply's row and its states take their seqs in commit order with the inbound traffic of the account.
/// </summary>
internal static class OutboxSql
{
    /// <summary>
    /// Queues a reply and, for a new one, appends its message record (origin outbox = 3, outbound = 4, status queued).
    /// $1 account, $2 idempotency key, $3 recipient, $4 type, $5 request, $6 request SHA-256, $7 recipient normalised,
    /// $8 text, $9 context id. Returns the new row's id; nothing when the key was used before.
    /// </summary>
    public const string Queue = $"""
        WITH queued AS (
            INSERT INTO outbox (account, idempotency_key, recipient, type, request, request_sha256)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (account, idempotency_key) DO NOTHING
            RETURNING id
        ), appended AS (
            INSERT INTO inbox (kind, flags, account, msg_id, contact, to_id, hstatus, ts, type, body, context_id, payload)
            SELECT 1, 7, $1, {OutboxMessageKey.Sql}, $7, $3, 'queued', extract(epoch FROM now())::bigint, $4, $8, $9, $5
            FROM queued
        )
        SELECT id FROM queued
        """;

    /// <summary>The row an idempotency key already names. $1 account, $2 key.</summary>
    public const string FindByKey = """
        SELECT id, state, request_sha256 FROM outbox WHERE account = $1 AND idempotency_key = $2
        """;

    /// <summary>
    /// Replies due now, at most $1 per account, oldest first within each account: accounts are found by a loose index
    /// scan of <c>outbox_queued</c> (one probe per account with queued replies, however many it has: a GROUP BY would
    /// read every queued row every pass), and each account's due replies by the same index.
    /// </summary>
    public const string Due = """
        WITH RECURSIVE queued(account) AS (
            (SELECT account FROM outbox WHERE state = 'queued' ORDER BY account LIMIT 1)
            UNION ALL
            SELECT (SELECT o.account FROM outbox o WHERE o.state = 'queued' AND o.account > q.account ORDER BY o.account LIMIT 1)
            FROM queued q WHERE q.account IS NOT NULL
        )
        SELECT q.account, d.id, d.recipient
        FROM queued q
        CROSS JOIN LATERAL (SELECT o.id, o.recipient, o.next_attempt_at FROM outbox o
                            WHERE o.state = 'queued' AND o.account = q.account AND o.next_attempt_at <= now()
                            ORDER BY o.next_attempt_at, o.id LIMIT $1) d
        WHERE q.account IS NOT NULL
        ORDER BY q.account, d.next_attempt_at, d.id
        """;

    /// <summary>Accounts with replies marked sending: those whose lease nobody holds were cut off by a dead instance.</summary>
    public const string SendingAccounts = """
        SELECT DISTINCT account FROM outbox WHERE state = 'sending'
        """;

    /// <summary>
    /// Marks $1 (ids) sending before any of them is sent, so that a crash from now on can never make them be sent again
    /// silently, and makes the state visible (a first attempt only; a retry stays "sending"). Returns what the send
    /// needs. $2: this instance, for the logs.
    /// </summary>
    public const string Claim = $"""
        WITH claimed AS (
            UPDATE outbox SET state = 'sending', attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, now()),
                              updated_at = now()
            WHERE id = ANY ($1) AND state = 'queued'
            RETURNING id, account, recipient, request, attempts, first_attempt_at
        ), appended AS (
            INSERT INTO inbox (kind, account, msg_id, wa_id, ts, type, payload)
            SELECT 2, account, {OutboxMessageKey.Sql}, recipient, extract(epoch FROM now())::bigint, 'sending',
                   convert_to(json_build_object('id', {OutboxMessageKey.Sql}, 'status', 'sending', 'attempt', attempts)::text, 'UTF8')
            FROM claimed WHERE attempts = 1
        )
        SELECT id, account, recipient, request, attempts, extract(epoch FROM now() - first_attempt_at)::float8 FROM claimed ORDER BY id
        """;

    /// <summary>
    /// Meta accepted $1 with wamid $2: the row is settled; the state and the wamid go to the stream. $3 Meta's answer.
    /// </summary>
    public const string Accepted = $"""
        WITH settled AS (
            UPDATE outbox SET state = 'accepted', wamid = $2, error_code = NULL, updated_at = now()
            WHERE id = $1 AND state IN ('sending', 'unknown')
            RETURNING id, account, recipient
        )
        INSERT INTO inbox (kind, account, msg_id, wa_id, ts, type, body, payload)
        SELECT 2, account, {OutboxMessageKey.Sql}, recipient, extract(epoch FROM now())::bigint, 'accepted', $2, $3 FROM settled
        """;

    /// <summary>
    /// $1 failed for good with Meta's error $3 (code $2): the row and the stream say so, with the error kept.
    /// </summary>
    public const string Failed = $"""
        WITH settled AS (
            UPDATE outbox SET state = 'failed', error_code = $2, error = $3, updated_at = now()
            WHERE id = $1 AND state IN ('sending', 'unknown')
            RETURNING id, account, recipient
        )
        INSERT INTO inbox (kind, account, msg_id, wa_id, ts, type, errors, payload)
        SELECT 2, account, {OutboxMessageKey.Sql}, recipient, extract(epoch FROM now())::bigint, 'failed',
               '['::bytea || $3 || ']'::bytea,
               convert_to(json_build_object('id', {OutboxMessageKey.Sql}, 'status', 'failed')::text, 'UTF8') FROM settled
        """;

    /// <summary>$1 is to be tried again at now + $2 seconds; $3/$4 the error of this attempt.</summary>
    public const string Retry = """
        UPDATE outbox SET state = 'queued', next_attempt_at = now() + make_interval(secs => $2), error_code = $3, error = $4,
                          updated_at = now()
        WHERE id = $1 AND state = 'sending'
        """;

    /// <summary>Rows $1 wait for their recipient's pair rate: each not before now + its $2 seconds. Nothing else changes.</summary>
    public const string Defer = """
        UPDATE outbox o SET next_attempt_at = now() + make_interval(secs => d.seconds)
        FROM unnest($1::bigint[], $2::float8[]) AS d(id, seconds)
        WHERE o.id = d.id AND o.state = 'queued'
        """;

    /// <summary>
    /// $1 timed out and timeouts are not retried (<c>Memo:Outbox:RetryTimeouts</c> false): Meta may have it, so it is
    /// unknown, as if the gateway had stopped mid-send.
    /// </summary>
    public const string MarkUnknown = """
        WITH cut AS (
            UPDATE outbox SET state = 'unknown', updated_at = now() WHERE id = $1 AND state = 'sending'
            RETURNING id, account, recipient, attempts
        )
        """ + AppendUnknown;

    /// <summary>
    /// The account $1's lease was just taken: rows it left "sending" (other than $2, this instance's own sends) were cut
    /// off mid-send by an instance that died, so whether Meta has them is unknown. They become "unknown" (visible in the
    /// stream), never sent again silently.
    /// </summary>
    public const string Orphans = """
        WITH cut AS (
            UPDATE outbox SET state = 'unknown', updated_at = now()
            WHERE account = $1 AND state = 'sending' AND NOT (id = ANY ($2))
            RETURNING id, account, recipient, attempts
        )
        """ + AppendUnknown;

    // The stream's side of a reply turned unknown: a status record for each row of the statement's "cut".
    private const string AppendUnknown = $"""
        INSERT INTO inbox (kind, account, msg_id, wa_id, ts, type, payload)
        SELECT 2, account, {OutboxMessageKey.Sql}, recipient, extract(epoch FROM now())::bigint, 'unknown',
               convert_to(json_build_object('id', {OutboxMessageKey.Sql}, 'status', 'unknown', 'attempt', attempts)::text, 'UTF8')
        FROM cut
        """;

    /// <summary>
    /// Unknown rows that a status webhook has since settled (it carried the row's key, so Meta had the message) become
    /// accepted with the wamid it named; with a resend policy ($1 seconds, null for never), unknown rows that nothing
    /// settled are queued again.
    /// </summary>
    public const string Reconcile = $"""
        WITH settled AS (
            UPDATE outbox o SET state = 'accepted', wamid = m.sent_wamid, updated_at = now()
            FROM messages m
            WHERE o.state = 'unknown' AND m.account = o.account AND m.wamid = '{OutboxMessageKey.Text}' || o.id AND m.sent_wamid IS NOT NULL
            RETURNING o.id
        )
        UPDATE outbox o SET state = 'queued', next_attempt_at = now(), updated_at = now()
        WHERE $1::float8 IS NOT NULL AND o.state = 'unknown' AND o.updated_at < now() - make_interval(secs => $1::float8)
          AND NOT EXISTS (SELECT 1 FROM settled s WHERE s.id = o.id)
          AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.account = o.account AND m.wamid = '{OutboxMessageKey.Text}' || o.id AND m.sent_wamid IS NOT NULL)
        """;

    /// <summary>Depth and age of the open rows, for the metrics: queued, sending, unknown, oldest open age in seconds.</summary>
    public const string Depth = """
        SELECT count(*) FILTER (WHERE state = 'queued'), count(*) FILTER (WHERE state = 'sending'),
               count(*) FILTER (WHERE state = 'unknown'),
               COALESCE(extract(epoch FROM now() - min(created_at) FILTER (WHERE state IN ('queued', 'sending')))::float8, 0)
        FROM outbox WHERE state IN ('queued', 'sending', 'unknown')
        """;

    /// <summary>Whether $1 is a coexistence number: it has had a history sync.</summary>
    public const string IsCoexistence = """
        SELECT EXISTS (SELECT 1 FROM accounts WHERE phone_number_id = $1 AND history_state IS NOT NULL)
        """;
}
