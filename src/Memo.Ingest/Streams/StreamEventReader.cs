using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;
using Memo.Ingest.Ingest;
using Memo.Ingest.Sync;
using Npgsql;

namespace Memo.Ingest.Streams;

/// <summary>
/// Reads an account's events from the <c>account_events</c> log in seq order, each with the current state of the row
/// it names (the same item the sync API returns), and serializes each one. Used for live events (once, for every
/// client) and for a client's replay from its cursor.
/// </summary>
internal static class StreamEventReader
{
    // Ordinals: 0 seq, 1 kind, then the message item at 2, the conversation item at 15 and the contact item at 23.
    private const int MessageAt = 2;
    private const int ConversationAt = 15;
    private const int ContactAt = 23;

    private const string Query = """
        SELECT e.seq, e.kind,
               m.seq, m.wamid, m.direction, m.from_wa_id, m.to_wa_id, m.ts, m.type, m.body, m.context_id,
               m.status, m.status_ts, m.status_errors, m.payload,
               c.seq, c.wa_id, ck.profile_name, c.message_count, c.last_message_wamid, c.last_message_at,
               c.last_message_type, c.last_message_preview,
               k.seq, k.wa_id, k.profile_name
        FROM account_events e
        LEFT JOIN messages m ON e.kind IN (1, 2) AND m.account = e.account AND m.wamid = e.key
        LEFT JOIN conversations c ON e.kind = 4 AND c.account = e.account AND c.wa_id = e.key
        LEFT JOIN contacts ck ON e.kind = 4 AND ck.account = e.account AND ck.wa_id = e.key
        LEFT JOIN contacts k ON e.kind = 3 AND k.account = e.account AND k.wa_id = e.key
        WHERE e.account = $1 AND e.seq > $2 AND e.seq <= $3
        ORDER BY e.seq
        LIMIT $4
        """;

    private static readonly JsonWriterOptions JsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Appends the events with <paramref name="after"/> &lt; seq ≤ <paramref name="upTo"/>, at most <paramref name="limit"/>.</summary>
    public static async Task ReadAsync(NpgsqlDataSource dataSource, string account, long after, long upTo, int limit,
        List<StreamEvent> events, CancellationToken cancellationToken)
    {
        await using NpgsqlCommand command = dataSource.CreateCommand(Query);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = account });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = after });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = upTo });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        await using NpgsqlDataReader row = await command.ExecuteReaderAsync(cancellationToken);
        var buffer = new ArrayBufferWriter<byte>(1024);
        while (await row.ReadAsync(cancellationToken))
        {
            long seq = row.GetInt64(0);
            var kind = (EventKind)row.GetInt16(1);
            buffer.ResetWrittenCount();
            using (var json = new Utf8JsonWriter(buffer, JsonOptions))
            {
                json.WriteStartObject();
                json.WriteString("type", "event");
                json.WriteString("account", account);
                json.WriteNumber("seq", seq);
                json.WriteString("kind", StreamEvent.KindName(kind));
                json.WritePropertyName("data");
                switch (kind)
                {
                    case EventKind.MessageCreated or EventKind.MessageStatus when !row.IsDBNull(MessageAt):
                        SyncItemWriter.WriteMessage(json, row, MessageAt);
                        break;
                    case EventKind.ConversationUpdated when !row.IsDBNull(ConversationAt):
                        SyncItemWriter.WriteConversation(json, row, ConversationAt);
                        break;
                    case EventKind.ContactUpdated when !row.IsDBNull(ContactAt):
                        SyncItemWriter.WriteContact(json, row, ContactAt);
                        break;
                    default:
                        json.WriteNullValue();
                        break;
                }

                json.WriteEndObject();
            }

            events.Add(new StreamEvent(account, seq, kind, buffer.WrittenSpan.ToArray()));
        }
    }
}
