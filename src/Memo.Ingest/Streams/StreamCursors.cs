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

    public static string Format(IReadOnlyDictionary<string, long> cursors)
    {
        var text = new StringBuilder();
        foreach ((string account, long seq) in cursors)
        {
            text.Append(text.Length == 0 ? "" : ",").Append(account).Append(':').Append(seq.ToString(CultureInfo.InvariantCulture));
        }

        return text.ToString();
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
