using System.Buffers;
using System.Buffers.Binary;
using Npgsql;

namespace Memo.Ingest.Storage;

/// <summary>
/// A whole binary COPY stream (PostgreSQL's <c>FORMAT BINARY</c>: signature, rows of length-prefixed big-endian
/// fields, trailer) built in one pooled array before a single byte is sent; <see cref="CopyAsync"/> then sends it as
/// it is through Npgsql's raw binary COPY. Building it first means the COPY never starts unless every row is encoded:
/// a raw COPY stream that is disposed part-way commits what it holds, and this buffer is never part-way.
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

    /// <summary>Starts a row of <paramref name="fields"/> fields.</summary>
    public void StartRow(short fields) => BinaryPrimitives.WriteInt16BigEndian(Reserve(sizeof(short)), fields);

    public void Write(short value) => BinaryPrimitives.WriteInt16BigEndian(Field(sizeof(short)), value);

    public void Write(long value) => BinaryPrimitives.WriteInt64BigEndian(Field(sizeof(long)), value);

    /// <summary>A text or bytea field: its bytes as they are (text in the database's encoding, UTF-8).</summary>
    public void Write(ReadOnlySpan<byte> value) => value.CopyTo(Field(value.Length));

    public void WriteNull() => BinaryPrimitives.WriteInt32BigEndian(Reserve(sizeof(int)), -1);

    /// <summary>Ends the stream (the trailer, a field count of −1).</summary>
    public void Finish() => BinaryPrimitives.WriteInt16BigEndian(Reserve(sizeof(short)), -1);

    /// <summary>
    /// Ends the stream and sends it whole by <paramref name="copyCommand"/> (a <c>COPY … FROM STDIN (FORMAT BINARY)</c>)
    /// on <paramref name="connection"/>; PostgreSQL's refusal of any row surfaces here, when the COPY ends.
    /// </summary>
    public async Task CopyAsync(NpgsqlConnection connection, string copyCommand)
    {
        Finish();
        await using NpgsqlRawCopyStream stream = await connection.BeginRawBinaryCopyAsync(copyCommand);
        await stream.WriteAsync(Written);
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

    /// <summary>A field's length prefix written, and the span for its <paramref name="length"/> bytes.</summary>
    private Span<byte> Field(int length)
    {
        Span<byte> field = Reserve(sizeof(int) + length);
        BinaryPrimitives.WriteInt32BigEndian(field, length);
        return field[sizeof(int)..];
    }

    /// <summary>The next <paramref name="length"/> bytes of the stream, the buffer grown (from the pool) when it is full.</summary>
    private Span<byte> Reserve(int length)
    {
        if (_length + length > _buffer.Length)
        {
            byte[] larger = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, _length + length));
            _buffer.AsSpan(0, _length).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = larger;
        }

        Span<byte> reserved = _buffer.AsSpan(_length, length);
        _length += length;
        return reserved;
    }
}
