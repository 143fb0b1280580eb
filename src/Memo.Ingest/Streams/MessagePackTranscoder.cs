using System.Buffers;
using System.Runtime.InteropServices;
using System.Text.Json;
using MessagePack;

namespace Memo.Ingest.Streams;

/// <summary>
/// Turns a JSON frame into the same data in MessagePack (the MessagePack package's writer): objects become maps,
/// arrays arrays, integral numbers integers, other numbers float64. Deriving the binary form from the JSON one keeps
/// the two formats equal by construction (and a test decodes both with independent decoders to check it).
/// </summary>
internal static class MessagePackTranscoder
{
    // Reused per thread: the only allocation that remains is the result, which every MessagePack client shares.
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_output;

    public static byte[] FromJson(ReadOnlyMemory<byte> json)
    {
        // Parse (unlike ParseValue) reads the caller's bytes in place instead of copying them.
        using JsonDocument document = JsonDocument.Parse(json);
        ArrayBufferWriter<byte> output = t_output ??= new ArrayBufferWriter<byte>(4096);
        output.ResetWrittenCount();
        var writer = new MessagePackWriter(output);
        Write(ref writer, document.RootElement);
        writer.Flush();
        byte[] result = output.WrittenSpan.ToArray();
        if (output.Capacity > 256 * 1024)
        {
            t_output = null; // one huge event should not pin its buffer
        }

        return result;
    }

    private static void Write(ref MessagePackWriter writer, JsonElement element)
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
                    WriteName(ref writer, property);
                    Write(ref writer, property.Value);
                }

                break;
            case JsonValueKind.Array:
                writer.WriteArrayHeader(element.GetArrayLength());
                foreach (JsonElement item in element.EnumerateArray())
                {
                    Write(ref writer, item);
                }

                break;
            case JsonValueKind.String:
                ReadOnlySpan<byte> quoted = JsonMarshal.GetRawUtf8Value(element);
                WriteText(ref writer, quoted[1..^1], element);
                break;
            case JsonValueKind.Number:
                if (element.TryGetInt64(out long integer))
                {
                    writer.Write(integer);
                }
                else
                {
                    writer.Write(element.GetDouble());
                }

                break;
            case JsonValueKind.True:
                writer.Write(true);
                break;
            case JsonValueKind.False:
                writer.Write(false);
                break;
            default:
                writer.WriteNil();
                break;
        }
    }

    /// <summary>Text as UTF-8 straight from the JSON when it has no escapes (the common case); unescaped otherwise.</summary>
    private static void WriteName(ref MessagePackWriter writer, JsonProperty property)
    {
        ReadOnlySpan<byte> raw = JsonMarshal.GetRawUtf8PropertyName(property);
        if (raw.IndexOf((byte)'\\') < 0)
        {
            writer.WriteString(raw);
        }
        else
        {
            writer.Write(property.Name);
        }
    }

    private static void WriteText(ref MessagePackWriter writer, ReadOnlySpan<byte> raw, JsonElement value)
    {
        if (raw.IndexOf((byte)'\\') < 0)
        {
            writer.WriteString(raw);
        }
        else
        {
            writer.Write(value.GetString());
        }
    }
}
