using System.Buffers;
using System.Text.Json;

namespace Memo.Ingest.Streams;

/// <summary><c>{"type":"ready"|"resync"|"token_expired","reason":…,"cursors":{"PN1":42}}</c>: the same JSON on both transports.</summary>
internal static class StreamControlMessage
{
    public static void Write(IBufferWriter<byte> output, string type, string? reason, IReadOnlyDictionary<string, long> cursors)
    {
        using var json = new Utf8JsonWriter(output);
        json.WriteStartObject();
        json.WriteString("type", type);
        if (reason is not null)
        {
            json.WriteString("reason", reason);
        }

        json.WritePropertyName("cursors");
        StreamCursors.WriteJson(json, cursors);
        json.WriteEndObject();
    }
}
