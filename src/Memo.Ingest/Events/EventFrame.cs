using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Memo.Ingest.Ingest;

namespace Memo.Ingest.Events;

/// <summary>
/// The binary form of one committed batch's events on the Redis channel. Little-endian:
/// <code>
/// version:u8 = 1, origin:16 bytes (instance id), count:i32,
/// count × { account:str, seq:i64, kind:u8, key:str, status:str?, ts:i64 }   where str = length:u16 + UTF-8
/// (length 0xFFFF = null)
/// </code>
/// The sequencer writes one frame per committed round, for this instance's bus and for Redis.
/// </summary>
internal static class EventFrame
{
    public const byte Version = 1;
    private const ushort NullLength = ushort.MaxValue;
    private const int HeaderLength = 1 + 16 + 4;

    public static void WriteHeader(IBufferWriter<byte> output, Guid origin, int count)
    {
        Span<byte> header = output.GetSpan(HeaderLength);
        header[0] = Version;
        origin.TryWriteBytes(header.Slice(1, 16));
        BinaryPrimitives.WriteInt32LittleEndian(header.Slice(17, 4), count);
        output.Advance(HeaderLength);
    }

    /// <summary>Writes one event as the sequencer read it back from PostgreSQL (its text arrives as strings).</summary>
    public static void WriteEvent(IBufferWriter<byte> output, CommittedEvent committed)
    {
        WriteString(output, committed.Account);
        Span<byte> middle = output.GetSpan(9);
        BinaryPrimitives.WriteInt64LittleEndian(middle, committed.Seq);
        middle[8] = (byte)committed.Kind;
        output.Advance(9);
        WriteString(output, committed.Key);
        WriteString(output, committed.Status);
        BinaryPrimitives.WriteInt64LittleEndian(output.GetSpan(8), committed.Timestamp);
        output.Advance(8);
    }

    /// <summary>Decodes a frame; throws <see cref="FormatException"/> for anything that is not a valid frame.</summary>
    public static Guid Read(ReadOnlySpan<byte> frame, List<CommittedEvent> events)
    {
        if (frame.Length < HeaderLength || frame[0] != Version)
        {
            throw new FormatException("Not an event frame of a known version.");
        }

        var origin = new Guid(frame.Slice(1, 16));
        int count = BinaryPrimitives.ReadInt32LittleEndian(frame.Slice(17, 4));
        ReadOnlySpan<byte> rest = frame[HeaderLength..];
        for (int i = 0; i < count; i++)
        {
            string account = ReadString(ref rest) ?? throw new FormatException("Event without an account.");
            if (rest.Length < 9)
            {
                throw new FormatException("Truncated event frame.");
            }

            long seq = BinaryPrimitives.ReadInt64LittleEndian(rest);
            var kind = (EventKind)rest[8];
            rest = rest[9..];
            string key = ReadString(ref rest) ?? throw new FormatException("Event without a key.");
            string? status = ReadString(ref rest);
            if (rest.Length < 8)
            {
                throw new FormatException("Truncated event frame.");
            }

            long timestamp = BinaryPrimitives.ReadInt64LittleEndian(rest);
            rest = rest[8..];
            events.Add(new CommittedEvent(account, seq, kind, key, status, timestamp));
        }

        return rest.IsEmpty ? origin : throw new FormatException("Trailing bytes after the last event.");
    }

    private static void WriteString(IBufferWriter<byte> output, string? value)
    {
        if (value is null)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(output.GetSpan(2), NullLength);
            output.Advance(2);
            return;
        }

        int length = Encoding.UTF8.GetByteCount(value);
        if (length >= NullLength)
        {
            throw new ArgumentOutOfRangeException(nameof(value), "Event strings are limited to 65534 bytes.");
        }

        Span<byte> span = output.GetSpan(2 + length);
        BinaryPrimitives.WriteUInt16LittleEndian(span, (ushort)length);
        Encoding.UTF8.GetBytes(value, span[2..]);
        output.Advance(2 + length);
    }

    private static string? ReadString(ref ReadOnlySpan<byte> rest)
    {
        if (rest.Length < 2)
        {
            throw new FormatException("Truncated event frame.");
        }

        ushort length = BinaryPrimitives.ReadUInt16LittleEndian(rest);
        rest = rest[2..];
        if (length == NullLength)
        {
            return null;
        }

        if (rest.Length < length)
        {
            throw new FormatException("Truncated event frame.");
        }

        string value = Encoding.UTF8.GetString(rest[..length]);
        rest = rest[length..];
        return value;
    }
}
