using System.Buffers;
using System.Buffers.Text;
using System.Globalization;
using System.Text;

namespace Memo.Ingest.Streams;

/// <summary>
/// A client's position per account, written <c>PN1:42,PN2:7</c>: the <c>since</c> parameter, SSE's event id (so a
/// browser's automatic <c>Last-Event-ID</c> resumes every account at once) and the resync signal's payload.
/// </summary>
internal static class StreamCursors
{
    public static bool TryParse(string? text, Dictionary<string, long> cursors)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return true;
        }

        foreach (string part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int colon = part.LastIndexOf(':');
            if (colon <= 0 || !long.TryParse(part.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out long seq))
            {
                return false;
            }

            cursors[part[..colon]] = seq;
        }

        return true;
    }

    /// <summary><c>PN1:42,PN2:7</c> (the form <see cref="TryParse"/> reads), written as UTF-8 straight into <paramref name="output"/>: the SSE
    /// <c>id:</c> line goes out with every event to every connection, so it must not make a string each time.</summary>
    public static void Write(IBufferWriter<byte> output, IReadOnlyDictionary<string, long> cursors)
    {
        // The sessions' cursors are a Dictionary; enumerating it as one avoids boxing the interface's enumerator.
        if (cursors is Dictionary<string, long> dictionary)
        {
            bool first = true;
            foreach ((string account, long seq) in dictionary)
            {
                WriteOne(output, account, seq, ref first);
            }

            return;
        }

        bool isFirst = true;
        foreach ((string account, long seq) in cursors)
        {
            WriteOne(output, account, seq, ref isFirst);
        }
    }

    private static void WriteOne(IBufferWriter<byte> output, string account, long seq, ref bool first)
    {
        // Separator + account + ':' + up to 20 digits of seq.
        Span<byte> span = output.GetSpan(1 + Encoding.UTF8.GetMaxByteCount(account.Length) + 1 + 20);
        int written = 0;
        if (!first)
        {
            span[written++] = (byte)',';
        }

        first = false;
        written += Encoding.UTF8.GetBytes(account, span[written..]);
        span[written++] = (byte)':';
        Utf8Formatter.TryFormat(seq, span[written..], out int digits);
        output.Advance(written + digits);
    }

    /// <summary><c>{"PN1":42,"PN2":7}</c></summary>
    public static void WriteJson(System.Text.Json.Utf8JsonWriter json, IReadOnlyDictionary<string, long> cursors)
    {
        json.WriteStartObject();
        foreach ((string account, long seq) in cursors)
        {
            json.WriteNumber(account, seq);
        }

        json.WriteEndObject();
    }
}
