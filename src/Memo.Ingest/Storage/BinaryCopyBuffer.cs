using System.Buffers;
using System.Buffers.Binary;

namespace Memo.Ingest.Storage;

/// <summary>
/// A whole binary COPY stream (PostgreSQL's <c>FORMAT BINARY</c>: signature, rows of length-prefixed big-endian
/// fields, trailer) built in one pooled array before a single byte is sent. Npgsql's raw binary COPY then carries it
/// as it is. Building it first means the COPY never starts unless every row is encoded: a raw COPY stream that is
/// disposed part-way commits what it holds, and this buffer is never part-way.
/// </summary>
internal sealed class BinaryCopyBuffer : IDisposable
{
    // "PGCOPY\n\377\r\n\0", then flags (no OIDs) and the length of the header extension, both 0.
    private static ReadOnlySpan<byte> Header => [(byte)'P', (byte)'G', (byte)'C', (byte)'O', (byte)'P', (byte)'Y', (byte)'\n', 0xFF, (byte)'\r', (byte)'\n', 0, 0, 0, 0, 0, 0, 0, 0, 0];

    private byte[] _buffer;
    private int _length;

    public BinaryCopyBuffer(int sizeHint)
    {
        _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(sizeHint, 4096) + Header.Length + 2);
        Header.CopyTo(_buffer);
        _length = Header.Length;
    }

    /// <summary>The stream so far; after <see cref="Finish"/>, the whole of it.</summary>
    public ReadOnlyMemory<byte> Written => _buffer.AsMemory(0, _length);

    /// <summary>Starts a row of <paramref name="fields"/> fields; <paramref name="size"/> is at least what the row's fields will take.</summary>
    public void StartRow(short fields, int size)
    {
        Ensure(2 + size);
        BinaryPrimitives.WriteInt16BigEndian(_buffer.AsSpan(_length), fields);
        _length += 2;
    }

    public void Write(short value)
    {
        Span<byte> field = Field(sizeof(short));
        BinaryPrimitives.WriteInt16BigEndian(field, value);
    }

    public void Write(long value)
    {
        Span<byte> field = Field(sizeof(long));
        BinaryPrimitives.WriteInt64BigEndian(field, value);
    }

    /// <summary>A text or bytea field: its bytes as they are (text in the database's encoding, UTF-8).</summary>
    public void Write(ReadOnlySpan<byte> value) => value.CopyTo(Field(value.Length));

    public void WriteNull()
    {
        BinaryPrimitives.WriteInt32BigEndian(_buffer.AsSpan(_length), -1);
        _length += sizeof(int);
    }

    /// <summary>Ends the stream (the trailer, a field count of −1).</summary>
    public void Finish()
    {
        Ensure(sizeof(short));
        BinaryPrimitives.WriteInt16BigEndian(_buffer.AsSpan(_length), -1);
        _length += sizeof(short);
    }

    public void Dispose()
    {
        byte[] buffer = _buffer;
        _buffer = [];
        _length = 0;
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>A field's length prefix written, and the span for its <paramref name="length"/> bytes (reserved by <see cref="StartRow"/>).</summary>
    private Span<byte> Field(int length)
    {
        BinaryPrimitives.WriteInt32BigEndian(_buffer.AsSpan(_length), length);
        Span<byte> field = _buffer.AsSpan(_length + sizeof(int), length);
        _length += sizeof(int) + length;
        return field;
    }

    private void Ensure(int more)
    {
        if (_length + more <= _buffer.Length)
        {
            return;
        }

        byte[] larger = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, _length + more));
        _buffer.AsSpan(0, _length).CopyTo(larger);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = larger;
    }
}
