using System.Buffers;
using System.Buffers.Text;
using System.Globalization;
using System.Text;

namespace Memo.Redis.Protocol;

/// <summary>
/// Parses RESP2 and RESP3 replies from a byte sequence that may end anywhere, as it arrives from a
/// <see cref="System.IO.Pipelines.PipeReader"/>. A reply that is not complete yet consumes nothing, so the caller
/// waits for more bytes and tries again from the same position.
/// </summary>
public static class RespParser
{
    /// <summary>Redis' own limit for a bulk string (proto-max-bulk-len).</summary>
    public const long MaxBulkLength = 512L * 1024 * 1024;

    private const int MaxDepth = 64;
    private const int MaxLineLength = 64 * 1024;
    private static readonly byte[] CrLf = "\r\n"u8.ToArray();

    // Replies are immutable (exposed as ReadOnlyMemory), so the most common short ones share one array each: a
    // pipeline of SETs answered by "+OK", or MGET hits on flag values like "1", allocate nothing per reply.
    private static readonly byte[] Ok = "OK"u8.ToArray();
    private static readonly byte[][] SingleBytes = Enumerable.Range(0, 256).Select(static b => new[] { (byte)b }).ToArray();

    /// <summary>
    /// Reads one complete reply from the start of <paramref name="buffer"/> and slices it off. Returns false, leaving
    /// <paramref name="buffer"/> as it was, when the reply is not complete yet.
    /// </summary>
    /// <exception cref="RedisProtocolException">The bytes are not RESP.</exception>
    public static bool TryRead(ref ReadOnlySequence<byte> buffer, out RedisReply reply)
    {
        var reader = new SequenceReader<byte>(buffer);
        if (!TryReadReply(ref reader, 0, out reply))
        {
            return false;
        }

        buffer = buffer.Slice(reader.Position);
        return true;
    }

    private static bool TryReadReply(ref SequenceReader<byte> reader, int depth, out RedisReply reply)
    {
        reply = default;
        if (depth > MaxDepth)
        {
            throw new RedisProtocolException($"Reply nested deeper than {MaxDepth} levels.");
        }

        if (!reader.TryRead(out byte prefix))
        {
            return false;
        }

        switch (prefix)
        {
            case (byte)'+':
                return TryReadLineBytes(ref reader, RespType.SimpleString, out reply);
            case (byte)'-':
                return TryReadLineBytes(ref reader, RespType.Error, out reply);
            case (byte)'(':
                return TryReadLineBytes(ref reader, RespType.BulkString, out reply);
            case (byte)':':
                if (!TryReadInteger(ref reader, out long integer))
                {
                    return false;
                }

                reply = RedisReply.FromInteger(integer);
                return true;
            case (byte)'$':
                return TryReadBulk(ref reader, RespType.BulkString, verbatim: false, out reply);
            case (byte)'=':
                return TryReadBulk(ref reader, RespType.BulkString, verbatim: true, out reply);
            case (byte)'!':
                return TryReadBulk(ref reader, RespType.Error, verbatim: false, out reply);
            case (byte)'*':
            case (byte)'~':
            case (byte)'>':
                return TryReadAggregate(ref reader, depth, pairs: false, out reply);
            case (byte)'%':
                return TryReadAggregate(ref reader, depth, pairs: true, out reply);
            case (byte)'|':
                // RESP3 attributes annotate the reply that follows; nothing here uses them, so they are skipped.
                return TryReadAggregate(ref reader, depth, pairs: true, out _) && TryReadReply(ref reader, depth, out reply);
            case (byte)'_':
                if (!TryReadLine(ref reader, out ReadOnlySequence<byte> empty))
                {
                    return false;
                }

                ExpectEmpty(empty, "null");
                reply = RedisReply.Null;
                return true;
            case (byte)'#':
                if (!TryReadLine(ref reader, out ReadOnlySequence<byte> flag))
                {
                    return false;
                }

                reply = flag.Length == 1 && flag.FirstSpan[0] is (byte)'t' or (byte)'f'
                    ? RedisReply.FromBoolean(flag.FirstSpan[0] == (byte)'t')
                    : throw new RedisProtocolException("Malformed RESP3 boolean.");
                return true;
            case (byte)',':
                if (!TryReadLine(ref reader, out ReadOnlySequence<byte> number))
                {
                    return false;
                }

                reply = RedisReply.FromDouble(ParseDouble(number));
                return true;
            default:
                throw new RedisProtocolException($"Unknown RESP type prefix 0x{prefix:X2}.");
        }
    }

    private static bool TryReadAggregate(ref SequenceReader<byte> reader, int depth, bool pairs, out RedisReply reply)
    {
        reply = default;
        if (!TryReadInteger(ref reader, out long count))
        {
            return false;
        }

        if (count == -1)
        {
            reply = RedisReply.Null;
            return true;
        }

        if (count < 0 || count > int.MaxValue / 2)
        {
            throw new RedisProtocolException($"Invalid aggregate length {count}.");
        }

        long elements = pairs ? count * 2 : count;
        // An element takes at least 3 bytes ("_\r\n"), so a count the buffer cannot hold yet is not allocated for.
        if (reader.Remaining < elements * 3)
        {
            return false;
        }

        var items = elements == 0 ? [] : new RedisReply[elements];
        for (int i = 0; i < items.Length; i++)
        {
            if (!TryReadReply(ref reader, depth + 1, out items[i]))
            {
                return false;
            }
        }

        reply = RedisReply.FromItems(RespType.Array, items);
        return true;
    }

    private static bool TryReadBulk(ref SequenceReader<byte> reader, RespType type, bool verbatim, out RedisReply reply)
    {
        reply = default;
        if (!TryReadInteger(ref reader, out long length))
        {
            return false;
        }

        if (length == -1)
        {
            reply = RedisReply.Null;
            return true;
        }

        if (length < 0 || length > MaxBulkLength)
        {
            throw new RedisProtocolException($"Invalid bulk length {length}.");
        }

        if (reader.Remaining < length + 2)
        {
            return false;
        }

        // A verbatim string starts with its format ("txt:"), which is not part of the text.
        int skip = verbatim && length >= 4 ? 4 : 0;
        reader.Advance(skip);
        byte[] bytes;
        if (length - skip == 1 && reader.TryPeek(out byte single))
        {
            bytes = SingleBytes[single];
        }
        else
        {
            bytes = length - skip == 0 ? [] : new byte[length - skip];
            reader.TryCopyTo(bytes);
        }

        reader.Advance(bytes.Length);
        if (!reader.IsNext(CrLf, advancePast: true))
        {
            throw new RedisProtocolException("Bulk string not terminated by CRLF.");
        }

        reply = RedisReply.FromBytes(type, bytes);
        return true;
    }

    private static bool TryReadLineBytes(ref SequenceReader<byte> reader, RespType type, out RedisReply reply)
    {
        reply = default;
        if (!TryReadLine(ref reader, out ReadOnlySequence<byte> line))
        {
            return false;
        }

        byte[] bytes = line.Length switch
        {
            0 => [],
            1 => SingleBytes[line.FirstSpan[0]],
            2 when type == RespType.SimpleString && line.FirstSpan.Length == 2 && line.FirstSpan.SequenceEqual(Ok) => Ok,
            _ => line.ToArray(),
        };
        reply = RedisReply.FromBytes(type, bytes);
        return true;
    }

    private static bool TryReadInteger(ref SequenceReader<byte> reader, out long value)
    {
        value = 0;
        if (!TryReadLine(ref reader, out ReadOnlySequence<byte> line))
        {
            return false;
        }

        Span<byte> scratch = stackalloc byte[24];
        ReadOnlySpan<byte> digits = line.IsSingleSegment ? line.FirstSpan : Copy(line, scratch);
        if (!Utf8Parser.TryParse(digits, out value, out int consumed) || consumed != digits.Length || digits.Length == 0)
        {
            throw new RedisProtocolException("Malformed integer in reply.");
        }

        return true;
    }

    private static double ParseDouble(ReadOnlySequence<byte> line)
    {
        string text = Encoding.ASCII.GetString(line);
        return text switch
        {
            "inf" => double.PositiveInfinity,
            "-inf" => double.NegativeInfinity,
            "nan" => double.NaN,
            _ when double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
            _ => throw new RedisProtocolException("Malformed RESP3 double."),
        };
    }

    private static ReadOnlySpan<byte> Copy(ReadOnlySequence<byte> line, Span<byte> scratch)
    {
        if (line.Length > scratch.Length)
        {
            throw new RedisProtocolException("Integer in reply is too long.");
        }

        line.CopyTo(scratch);
        return scratch[..(int)line.Length];
    }

    private static void ExpectEmpty(ReadOnlySequence<byte> line, string what)
    {
        if (!line.IsEmpty)
        {
            throw new RedisProtocolException($"Malformed RESP3 {what}.");
        }
    }

    private static bool TryReadLine(ref SequenceReader<byte> reader, out ReadOnlySequence<byte> line)
    {
        if (reader.TryReadTo(out line, CrLf, advancePastDelimiter: true))
        {
            return true;
        }

        if (reader.Remaining > MaxLineLength)
        {
            throw new RedisProtocolException($"A reply line is longer than {MaxLineLength} bytes.");
        }

        return false;
    }
}
