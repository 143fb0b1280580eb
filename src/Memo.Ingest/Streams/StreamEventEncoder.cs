using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;
using Memo.Ingest.Ingest;
using Memo.Ingest.Sync;
using Npgsql;

namespace Memo.Ingest.Streams;

/// <summary>
/// Writes one event as clients receive it, <c>{"type":"event","account":…,"seq":…,"kind":…,"data":{…}}</c>, where
/// <c>data</c> is the sync API's item for the row the event names, taken from a data reader row that carries the
/// message, conversation and contact item columns side by side (null where the kind does not use them). The
/// sequencer encodes what its statement just committed; a replay encodes what <see cref="StreamEventReader"/> reads.
/// One instance per thread of use: it keeps its JSON writer.
/// </summary>
internal sealed class StreamEventEncoder
{
    /// <summary>Where the item shapes start in a row.</summary>
    public readonly record struct Layout(int MessageAt, int ConversationAt, int ContactAt, int ContactBookAt, int HistoryAt);

    private static readonly JsonWriterOptions JsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true };

    private readonly Utf8JsonWriter _json = new(Stream.Null, JsonOptions);

    public void Write(IBufferWriter<byte> output, string account, long seq, EventKind kind, NpgsqlDataReader row, Layout layout)
    {
        Utf8JsonWriter json = _json;
        json.Reset(output);
        json.WriteStartObject();
        json.WriteString("type"u8, "event"u8);
        json.WriteString("account"u8, account);
        json.WriteNumber("seq"u8, seq);
        json.WriteString("kind"u8, StreamEvent.KindName(kind));
        json.WritePropertyName("data"u8);
        switch (kind)
        {
            case EventKind.MessageCreated or EventKind.MessageStatus or EventKind.MessageUpdated when !row.IsDBNull(layout.MessageAt):
                SyncItemWriter.WriteMessage(json, row, layout.MessageAt);
                break;
            case EventKind.ConversationUpdated when !row.IsDBNull(layout.ConversationAt):
                SyncItemWriter.WriteConversation(json, row, layout.ConversationAt);
                break;
            case EventKind.ContactUpdated when !row.IsDBNull(layout.ContactAt):
                SyncItemWriter.WriteContact(json, row, layout.ContactAt);
                break;
            case EventKind.ContactBookUpdated when !row.IsDBNull(layout.ContactBookAt):
                SyncItemWriter.WriteContactBookEntry(json, row, layout.ContactBookAt);
                break;
            case EventKind.HistorySync when !row.IsDBNull(layout.HistoryAt):
                SyncItemWriter.WriteHistory(json, row, layout.HistoryAt);
                break;
            default:
                json.WriteNullValue();
                break;
        }

        json.WriteEndObject();
        json.Flush();
    }
}
