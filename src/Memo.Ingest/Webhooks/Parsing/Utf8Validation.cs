using System.Buffers;
using System.Text.Unicode;

namespace Memo.Ingest.Webhooks.Parsing;

/// <summary>
/// UTF-8 validation of a whole body. Utf8JsonReader accepts invalid UTF-8 inside strings (it only fails when a string
/// is transcoded), and PostgreSQL would then refuse the batch, so the gateway checks the bytes before parsing.
/// </summary>
internal static class Utf8Validation
{
    public static bool IsValid(in ReadOnlySequence<byte> body)
    {
        if (body.IsSingleSegment)
        {
            return Utf8.IsValid(body.FirstSpan);
        }

        // A code point may straddle two segments: carry its first bytes (at most 3) into the next round.
        Span<byte> carry = stackalloc byte[4 + 256];
        Span<char> sink = stackalloc char[512];
        int carried = 0;
        foreach (ReadOnlyMemory<byte> segment in body)
        {
            ReadOnlySpan<byte> span = segment.Span;
            while (!span.IsEmpty)
            {
                // Validate through a small window so the carried bytes can be prepended without allocating.
                int take = Math.Min(span.Length, carry.Length - carried);
                span[..take].CopyTo(carry[carried..]);
                span = span[take..];
                ReadOnlySpan<byte> window = carry[..(carried + take)];
                carried = 0;
                while (!window.IsEmpty)
                {
                    OperationStatus status = Utf8.ToUtf16(window, sink, out int read, out _, replaceInvalidSequences: false, isFinalBlock: false);
                    window = window[read..];
                    if (status == OperationStatus.InvalidData)
                    {
                        return false;
                    }

                    if (status == OperationStatus.NeedMoreData)
                    {
                        window.CopyTo(carry);
                        carried = window.Length;
                        break;
                    }
                }
            }
        }

        return carried == 0;
    }
}
