using System.Buffers;
using System.Text;
using System.Text.Json;

namespace Memo.Ingest.Streams;

/// <summary>
/// Turns a JSON frame into the same data in MessagePack: objects become maps, arrays arrays, integral numbers
/// integers, other numbers float64. Deriving the binary form from the JSON one keeps the two formats equal by
/// construction (and a test decodes both with independent decoders to check it).
/// </summary>
internal static class MessagePackTranscoder
{
    public static byte[] FromJson(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        using JsonDocument document = JsonDocument.ParseValue(ref reader);
        var output = new ArrayBufferWriter<byte>(json.Length);
        Write(new MessagePackWriter(output), document.RootElement);
        return output.WrittenSpan.ToArray();
    }

    private static void Write(MessagePackWriter writer, JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                int properties = 0;
                foreach (JsonProperty _ in element.EnumerateObject())
                {
                    properties++;
                }

                writer.WriteMapHeader(properties);
                foreach (JsonProperty property in element.EnumerateObject())
                {
                    WriteText(writer, property.Name);
                    Write(writer, property.Value);
                }

                break;
            case JsonValueKind.Array:
                writer.WriteArrayHeader(element.GetArrayLength());
                foreach (JsonElement item in element.EnumerateArray())
                {
                    Write(writer, item);
                }

                break;
            case JsonValueKind.String:
                WriteText(writer, element.GetString()!);
                break;
            case JsonValueKind.Number:
                if (element.TryGetInt64(out long integer))
                {
                    writer.WriteInt64(integer);
                }
                else
                {
                    writer.WriteDouble(element.GetDouble());
                }

                break;
            case JsonValueKind.True:
                writer.WriteBoolean(true);
                break;
            case JsonValueKind.False:
                writer.WriteBoolean(false);
                break;
            default:
                writer.WriteNil();
                break;
        }
    }

    private static void WriteText(MessagePackWriter writer, string text)
    {
        byte[] rented = ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetMaxByteCount(text.Length));
        int length = Encoding.UTF8.GetBytes(text, rented);
        writer.WriteString(rented.AsSpan(0, length));
        ArrayPool<byte>.Shared.Return(rented);
    }
}
