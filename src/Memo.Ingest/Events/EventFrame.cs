using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Memo.Ingest.Ingest;

namespace Memo.Ingest.Events;

/// <summary>
/// The binary form of one committed sequencer round's events, as this instance's <see cref="Streams.StreamHub"/>
/// and (on the Redis channel) every other instance's receive it. Little-endian:
/// <code>
/// version:u8 = 2, origin:16 bytes (instance id), count:i32,
/// count × { account:u16 length + UTF-8, seq:i64, kind:u8, event:i32 length + the event's client JSON }
/// </code>
/// The JSON is exactly what stream clients receive (<see cref="Streams.StreamEventEncoder"/>): an instance that
/// receives a frame hands it on without reading PostgreSQL.
/// </summary>
internal static class EventFrame
{
    public const byte Version = 2;
    private const int HeaderLength = 1 + 16 + 4;
    private const int CountOffset = 17;

    /// <summary>Starts a frame in an empty <paramref name="output"/>; <see cref="SetCount"/> completes it.</summary>
    public static void WriteHeader(ArrayBufferWriter<byte> output, Guid origin)
    {
        Span<byte> header = output.GetSpan(HeaderLength);
        header[0] = Version;
        origin.TryWriteBytes(header.Slice(1, 16));
        BinaryPrimitives.WriteInt32LittleEndian(header.Slice(CountOffset, 4), 0);
        output.Advance(HeaderLength);
    }

    /// <summary>Writes an event's head and returns where its JSON's length goes, for <see cref="EndEvent"/>.</summary>
    public static int BeginEvent(ArrayBufferWriter<byte> output, string account, long seq, EventKind kind)
    {
        int length = Encoding.UTF8.GetByteCount(account);
        if (length > ushort.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(account), "Account ids are limited to 65535 bytes.");
        }

        Span<byte> span = output.GetSpan(2 + length + 8 + 1 + 4);
        BinaryPrimitives.WriteUInt16LittleEndian(span, (ushort)length);
        Encoding.UTF8.GetBytes(account, span[2..]);
        BinaryPrimitives.WriteInt64LittleEndian(span[(2 + length)..], seq);
        span[2 + length + 8] = (byte)kind;
        output.Advance(2 + length + 8 + 1 + 4);
        return output.WrittenCount - 4;
    }

    /// <summary>Records the length of the JSON written since <see cref="BeginEvent"/>.</summary>
    public static void EndEvent(ArrayBufferWriter<byte> output, int lengthAt) =>
        BinaryPrimitives.WriteInt32LittleEndian(Writable(output).Slice(lengthAt, 4), output.WrittenCount - lengthAt - 4);

    public static void SetCount(ArrayBufferWriter<byte> output, int count) =>
        BinaryPrimitives.WriteInt32LittleEndian(Writable(output).Slice(CountOffset, 4), count);

    /// <summary>The instance that wrote <paramref name="frame"/>, or false if it is not a frame of this version.</summary>
    public static bool TryReadOrigin(ReadOnlySpan<byte> frame, out Guid origin)
    {
        origin = default;
        if (frame.Length < HeaderLength || frame[0] != Version)
        {
            return false;
        }

        origin = new Guid(frame.Slice(1, 16));
        return true;
    }

    // The frame is built in place; its header and lengths are completed once what follows them is known.
    private static Span<byte> Writable(ArrayBufferWriter<byte> output) => MemoryMarshal.AsMemory(output.WrittenMemory).Span;

    /// <summary>Reads a frame's events one by one, without allocating. Throws <see cref="FormatException"/> for
    /// anything that is not a valid frame.</summary>
    public ref struct Reader
    {
        private ReadOnlySpan<byte> _rest;
        private int _remaining;

        public Reader(ReadOnlySpan<byte> frame)
        {
            if (frame.Length < HeaderLength || frame[0] != Version)
            {
                throw new FormatException("Not an event frame of a known version.");
            }

            _remaining = BinaryPrimitives.ReadInt32LittleEndian(frame.Slice(CountOffset, 4));
            if (_remaining < 0)
            {
                throw new FormatException("Negative event count.");
            }

            _rest = frame[HeaderLength..];
        }

        public bool TryReadNext(out ReadOnlySpan<byte> account, out long seq, out EventKind kind, out ReadOnlySpan<byte> json)
        {
            if (_remaining == 0)
            {
                if (!_rest.IsEmpty)
                {
                    throw new FormatException("Trailing bytes after the last event.");
                }

                account = json = default;
                seq = 0;
                kind = default;
                return false;
            }

            _remaining--;
            account = Take(ReadLength(2));
            seq = BinaryPrimitives.ReadInt64LittleEndian(Take(8));
            kind = (EventKind)Take(1)[0];
            json = Take(ReadLength(4));
            return true;
        }

        private int ReadLength(int width)
        {
            ReadOnlySpan<byte> bytes = Take(width);
            int length = width == 2 ? BinaryPrimitives.ReadUInt16LittleEndian(bytes) : BinaryPrimitives.ReadInt32LittleEndian(bytes);
            return length >= 0 ? length : throw new FormatException("Negative length in an event frame.");
        }

        private ReadOnlySpan<byte> Take(int length)
        {
            if (_rest.Length < length)
            {
                throw new FormatException("Truncated event frame.");
            }

            ReadOnlySpan<byte> taken = _rest[..length];
            _rest = _rest[length..];
            return taken;
        }
    }
}
