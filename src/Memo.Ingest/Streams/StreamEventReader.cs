using System.Buffers;
using Memo.Ingest.Ingest;
using Npgsql;

namespace Memo.Ingest.Streams;

/// <summary>
/// Reads an account's events from the <c>account_events</c> log in seq order, each with the current state of the row
/// it names (the same item the sync API returns), encoded for clients. Live events never come from here: they are
/// encoded by the sequencer that committed them. This serves a client's replay from its cursor and the hub's repair
/// of an announcement that never arrived.
/// </summary>
internal sealed class StreamEventReader
{
    private static readonly StreamEventEncoder.Layout Layout = new(MessageAt: 2, ConversationAt: 20, ContactAt: 29, ContactBookAt: 32, HistoryAt: 39);

    private const string Query = """
        SELECT e.seq, e.kind,
               m.seq, m.wamid, m.direction, m.from_wa_id, m.to_wa_id, m.ts, m.type, m.body, m.context_id,
               m.status, m.status_ts, m.status_errors, m.payload, m.origin, m.contact, m.edited_text, m.revoked, m.sent_wamid,
               c.seq, c.wa_id, ck.profile_name, c.message_count, c.last_message_wamid, c.last_message_at,
               c.last_message_type, c.last_message_preview, c.unread_count,
               k.seq, k.wa_id, k.profile_name,
               b.seq, b.contact, b.phone_number, b.full_name, b.first_name, b.removed, b.book_ts,
               a.history_state, a.history_progress::bigint, a.history_phase::bigint, a.history_chunk::bigint, a.history_errors
        FROM account_events e
        LEFT JOIN messages m ON e.kind IN (1, 2, 7) AND m.account = e.account AND m.wamid = e.key
        LEFT JOIN conversations c ON e.kind = 4 AND c.account = e.account AND c.wa_id = e.key
        LEFT JOIN contacts ck ON e.kind = 4 AND ck.account = e.account AND ck.wa_id = e.key
        LEFT JOIN contacts k ON e.kind = 3 AND k.account = e.account AND k.wa_id = e.key
        LEFT JOIN contact_book b ON e.kind = 5 AND b.account = e.account AND b.contact = e.key
        LEFT JOIN accounts a ON e.kind = 6 AND a.phone_number_id = e.account
        WHERE e.account = $1 AND e.seq > $2 AND e.seq <= $3
        ORDER BY e.seq
        LIMIT $4
        """;

    private readonly StreamEventEncoder _encoder = new();
    private readonly ArrayBufferWriter<byte> _buffer = new(1024);

    /// <summary>
    /// Appends the events with <paramref name="after"/> &lt; seq ≤ <paramref name="upTo"/>, in seq order: at most
    /// <paramref name="limit"/>, and no more once their JSON reaches <paramref name="maxBytes"/> (at least one), so a
    /// page holds a bounded amount of memory whatever the size of the rows.
    /// </summary>
    public async Task ReadAsync(NpgsqlDataSource dataSource, string account, long after, long upTo, int limit, int maxBytes,
        List<StreamEvent> events, CancellationToken cancellationToken)
    {
        await using NpgsqlCommand command = dataSource.CreateCommand(Query);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = account });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = after });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = upTo });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        await using NpgsqlDataReader row = await command.ExecuteReaderAsync(cancellationToken);
        long bytes = 0;
        while (bytes < maxBytes && await row.ReadAsync(cancellationToken))
        {
            long seq = row.GetInt64(0);
            var kind = (EventKind)row.GetInt16(1);
            _buffer.ResetWrittenCount();
            _encoder.Write(_buffer, account, seq, kind, row, Layout);
            events.Add(new StreamEvent(account, seq, kind, _buffer.WrittenSpan.ToArray()));
            bytes += _buffer.WrittenCount;
        }
    }
}
