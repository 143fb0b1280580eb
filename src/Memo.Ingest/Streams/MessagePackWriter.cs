using System.Buffers;
using System.Buffers.Binary;

namespace Memo.Ingest.Streams;

/// <summary>
/// A small MessagePack encoder for our stream frames (the MessagePack package is not in our registry). It always
/// picks the smallest encoding, as the specification asks: fixint/fixstr/fixmap/fixarray where they fit.
/// </summary>
internal readonly ref struct MessagePackWriter(IBufferWriter<byte> output)
{
    private readonly IBufferWriter<byte> _output = output;

    public void WriteNil() => WriteByte(0xc0);

    public void WriteBoolean(bool value) => WriteByte(value ? (byte)0xc3 : (byte)0xc2);

    public void WriteInt64(long value)
    {
        if (value >= 0)
        {
            if (value <= 0x7f)
            {
                WriteByte((byte)value);
            }
            else if (value <= byte.MaxValue)
            {
                Span<byte> span = Reserve(2);
                span[0] = 0xcc;
                span[1] = (byte)value;
            }
            else if (value <= ushort.MaxValue)
            {
                Span<byte> span = Reserve(3);
                span[0] = 0xcd;
                BinaryPrimitives.WriteUInt16BigEndian(span[1..], (ushort)value);
            }
            else if (value <= uint.MaxValue)
            {
                Span<byte> span = Reserve(5);
                span[0] = 0xce;
                BinaryPrimitives.WriteUInt32BigEndian(span[1..], (uint)value);
            }
            else
            {
                Span<byte> span = Reserve(9);
                span[0] = 0xcf;
                BinaryPrimitives.WriteUInt64BigEndian(span[1..], (ulong)value);
            }
        }
        else if (value >= -32)
        {
            WriteByte(unchecked((byte)(sbyte)value));
        }
        else if (value >= sbyte.MinValue)
        {
            Span<byte> span = Reserve(2);
            span[0] = 0xd0;
            span[1] = unchecked((byte)(sbyte)value);
        }
        else if (value >= short.MinValue)
        {
            Span<byte> span = Reserve(3);
            span[0] = 0xd1;
            BinaryPrimitives.WriteInt16BigEndian(span[1..], (short)value);
        }
        else if (value >= int.MinValue)
        {
            Span<byte> span = Reserve(5);
            span[0] = 0xd2;
            BinaryPrimitives.WriteInt32BigEndian(span[1..], (int)value);
        }
        else
        {
            Span<byte> span = Reserve(9);
            span[0] = 0xd3;
            BinaryPrimitives.WriteInt64BigEndian(span[1..], value);
        }
    }

    public void WriteDouble(double value)
    {
        Span<byte> span = Reserve(9);
        span[0] = 0xcb;
        BinaryPrimitives.WriteDoubleBigEndian(span[1..], value);
    }

    /// <summary>A string from its UTF-8 bytes.</summary>
    public void WriteString(ReadOnlySpan<byte> utf8)
    {
        WriteLengthHeader(utf8.Length, fixBase: 0xa0, fixLimit: 32, eight: 0xd9, sixteen: 0xda, thirtyTwo: 0xdb);
        utf8.CopyTo(Reserve(utf8.Length));
    }

    public void WriteArrayHeader(int count) =>
        WriteLengthHeader(count, fixBase: 0x90, fixLimit: 16, eight: 0, sixteen: 0xdc, thirtyTwo: 0xdd);

    public void WriteMapHeader(int count) =>
        WriteLengthHeader(count, fixBase: 0x80, fixLimit: 16, eight: 0, sixteen: 0xde, thirtyTwo: 0xdf);

    private void WriteLengthHeader(int length, byte fixBase, int fixLimit, byte eight, byte sixteen, byte thirtyTwo)
    {
        if (length < fixLimit)
        {
            WriteByte((byte)(fixBase | length));
        }
        else if (eight != 0 && length <= byte.MaxValue)
        {
            Span<byte> span = Reserve(2);
            span[0] = eight;
            span[1] = (byte)length;
        }
        else if (length <= ushort.MaxValue)
        {
            Span<byte> span = Reserve(3);
            span[0] = sixteen;
            BinaryPrimitives.WriteUInt16BigEndian(span[1..], (ushort)length);
        }
        else
        {
            Span<byte> span = Reserve(5);
            span[0] = thirtyTwo;
            BinaryPrimitives.WriteUInt32BigEndian(span[1..], (uint)length);
        }
    }

    private void WriteByte(byte value) => Reserve(1)[0] = value;

    private Span<byte> Reserve(int length)
    {
        Span<byte> span = _output.GetSpan(length)[..length];
        _output.Advance(length);
        return span;
    }
}
