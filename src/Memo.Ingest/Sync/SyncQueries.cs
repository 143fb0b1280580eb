namespace Memo.Ingest.Sync;

/// <summary>
/// One statement per page, so the items and <c>latest_seq</c> come from the same snapshot: a client that has read
/// every page up to <c>has_more = false</c> can continue from <c>latest_seq</c> without missing a row.
///
/// Pages walk the event log's index (<c>account_events</c> by account and seq; partial indexes for contact and
/// conversation events) and show a row at the event that last changed it (<c>row.seq = event.seq</c>), so the
/// projection tables need no seq index of their own (docs/DECISIONS.md). The row is found through LATERAL … LIMIT 1,
/// which keeps the plan an index probe per event whatever the statistics say.
/// Parameters: $1 account, $2 since_seq, $3 limit + 1 (the extra row tells whether there is more). Every row ends with
/// the oldest seq the account's event log holds (<see cref="SyncEndpoints"/> answers 410 for a cursor before it).
/// </summary>
internal static class SyncQueries
{
    // The account's latest seq, and the oldest seq its event log still holds (1 unless old events were dropped,
    // docs/OPERATIONS.md "Retention"): a cursor below the one before it has lost events it would need.
    private const string LatestSeq = """
        SELECT COALESCE((SELECT last_seq FROM accounts WHERE phone_number_id = $1), 0) AS latest_seq,
               (SELECT seq FROM account_events WHERE account = $1 ORDER BY seq LIMIT 1) AS oldest_seq
        """;

    public const string Messages = $"""
        SELECT l.latest_seq, p.seq, p.wamid, p.direction, p.from_wa_id, p.to_wa_id, p.ts, p.type, p.body, p.context_id,
               p.status, p.status_ts, p.status_errors, p.payload, p.origin, p.contact, p.edited_text, p.revoked, p.sent_wamid,
               l.oldest_seq
        FROM ({LatestSeq}) l
        LEFT JOIN LATERAL (
            SELECT m.* FROM account_events e
            CROSS JOIN LATERAL (SELECT * FROM messages m
                                WHERE m.account = e.account AND m.wamid = e.key AND m.seq = e.seq LIMIT 1) m
            WHERE e.account = $1 AND e.seq > $2 AND e.kind IN (1, 2, 7)
            ORDER BY e.seq LIMIT $3) p ON true
        ORDER BY p.seq
        """;

    public const string Conversations = $"""
        SELECT l.latest_seq, p.seq, p.wa_id, k.profile_name, p.message_count, p.last_message_wamid, p.last_message_at,
               p.last_message_type, p.last_message_preview, p.unread_count, l.oldest_seq
        FROM ({LatestSeq}) l
        LEFT JOIN LATERAL (
            SELECT c.* FROM account_events e
            CROSS JOIN LATERAL (SELECT * FROM conversations c
                                WHERE c.account = e.account AND c.wa_id = e.key AND c.seq = e.seq LIMIT 1) c
            WHERE e.account = $1 AND e.seq > $2 AND e.kind = 4
            ORDER BY e.seq LIMIT $3) p ON true
        LEFT JOIN contacts k ON k.account = $1 AND k.wa_id = p.wa_id
        ORDER BY p.seq
        """;

    public const string Contacts = $"""
        SELECT l.latest_seq, p.seq, p.wa_id, p.profile_name, l.oldest_seq
        FROM ({LatestSeq}) l
        LEFT JOIN LATERAL (
            SELECT k.* FROM account_events e
            CROSS JOIN LATERAL (SELECT * FROM contacts k
                                WHERE k.account = e.account AND k.wa_id = e.key AND k.seq = e.seq LIMIT 1) k
            WHERE e.account = $1 AND e.seq > $2 AND e.kind = 3
            ORDER BY e.seq LIMIT $3) p ON true
        ORDER BY p.seq
        """;

    public const string ContactBook = $"""
        SELECT l.latest_seq, p.seq, p.contact, p.phone_number, p.full_name, p.first_name, p.removed, p.book_ts, l.oldest_seq
        FROM ({LatestSeq}) l
        LEFT JOIN LATERAL (
            SELECT b.* FROM account_events e
            CROSS JOIN LATERAL (SELECT * FROM contact_book b
                                WHERE b.account = e.account AND b.contact = e.key AND b.seq = e.seq LIMIT 1) b
            WHERE e.account = $1 AND e.seq > $2 AND e.kind = 5
            ORDER BY e.seq LIMIT $3) p ON true
        ORDER BY p.seq
        """;

    /// <summary>The history backfill's state of account $1 (no row when the account is unknown).</summary>
    public const string History = """
        SELECT history_seq, history_state, history_progress::bigint, history_phase::bigint, history_chunk::bigint, history_errors
        FROM accounts WHERE phone_number_id = $1
        """;
}
