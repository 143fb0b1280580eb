namespace Memo.Ingest.Sync;

/// <summary>
/// One statement per page, so the items and <c>latest_seq</c> come from the same snapshot: a client that has read
/// every page up to <c>has_more = false</c> can continue from <c>latest_seq</c> without missing a row.
/// Parameters: $1 account, $2 since_seq, $3 limit + 1 (the extra row tells whether there is more).
/// </summary>
internal static class SyncQueries
{
    private const string LatestSeq =
        "SELECT COALESCE((SELECT last_seq FROM accounts WHERE phone_number_id = $1), 0) AS latest_seq";

    public const string Messages = $"""
        SELECT l.latest_seq, p.seq, p.wamid, p.direction, p.from_wa_id, p.to_wa_id, p.ts, p.type, p.body, p.context_id,
               p.status, p.status_ts, p.status_errors::text, p.payload::text
        FROM ({LatestSeq}) l
        LEFT JOIN LATERAL (SELECT * FROM messages WHERE account = $1 AND seq > $2 ORDER BY seq LIMIT $3) p ON true
        ORDER BY p.seq
        """;

    public const string Conversations = $"""
        SELECT l.latest_seq, p.seq, p.wa_id, k.profile_name, p.message_count, p.last_message_wamid, p.last_message_at,
               p.last_message_type, p.last_message_preview
        FROM ({LatestSeq}) l
        LEFT JOIN LATERAL (SELECT * FROM conversations WHERE account = $1 AND seq > $2 ORDER BY seq LIMIT $3) p ON true
        LEFT JOIN contacts k ON k.account = $1 AND k.wa_id = p.wa_id
        ORDER BY p.seq
        """;

    public const string Contacts = $"""
        SELECT l.latest_seq, p.seq, p.wa_id, p.profile_name
        FROM ({LatestSeq}) l
        LEFT JOIN LATERAL (SELECT * FROM contacts WHERE account = $1 AND seq > $2 ORDER BY seq LIMIT $3) p ON true
        ORDER BY p.seq
        """;
}
