using System.Buffers;

namespace Memo.Ingest.Webhooks.Parsing;

/// <summary>A growable byte buffer rented from <see cref="ArrayPool{T}"/> (a request body, or an arena's storage).</summary>
internal sealed class PooledBuffer
{
    // Arrays above this size go back to the shared pool on reset, so that one 3 MB delivery does not pin 3 MB in
    // every pooled instance for the life of the process.
    private const int RetainedCapacity = 64 * 1024;

    private byte[] _buffer = [];

    public int Length { get; private set; }

    public ReadOnlySpan<byte> Span => _buffer.AsSpan(0, Length);

    public ReadOnlyMemory<byte> Memory => _buffer.AsMemory(0, Length);

    /// <summary>Space for at least <paramref name="sizeHint"/> more bytes after <see cref="Length"/>.</summary>
    public Span<byte> GetSpan(int sizeHint)
    {
        int required = Length + Math.Max(sizeHint, 1);
        if (required > _buffer.Length)
        {
            byte[] grown = ArrayPool<byte>.Shared.Rent(Math.Max(required, Math.Max(4096, _buffer.Length * 2)));
            _buffer.AsSpan(0, Length).CopyTo(grown);
            if (_buffer.Length > 0)
            {
                ArrayPool<byte>.Shared.Return(_buffer);
            }

            _buffer = grown;
        }

        return _buffer.AsSpan(Length);
    }

    public void Advance(int count) => Length += count;

    public void Reset()
    {
        Length = 0;
        if (_buffer.Length > RetainedCapacity)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
        }
    }
}
