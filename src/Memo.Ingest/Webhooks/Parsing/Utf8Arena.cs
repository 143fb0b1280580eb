using System.Buffers;

namespace Memo.Ingest.Webhooks.Parsing;

/// <summary>
/// Append-only UTF-8 storage for the values extracted from one webhook (unescaped strings and raw JSON objects).
/// Records refer to it by <see cref="Utf8Range"/>, so parsing allocates nothing per message; the storage is a pooled
/// buffer kept with its pooled <see cref="ParsedWebhook"/>.
/// </summary>
internal sealed class Utf8Arena
{
    private readonly PooledBuffer _buffer = new();

    public ReadOnlySpan<byte> this[Utf8Range range] =>
        range.IsNull ? default : _buffer.Span.Slice(range.Start, range.Length);

    public ReadOnlyMemory<byte> GetMemory(Utf8Range range) =>
        range.IsNull ? default : _buffer.Memory.Slice(range.Start, range.Length);

    /// <summary>Free space of at least <paramref name="sizeHint"/> bytes; keep what was used with <see cref="Commit"/>.</summary>
    public Span<byte> GetSpan(int sizeHint) => _buffer.GetSpan(sizeHint);

    public Utf8Range Commit(int length)
    {
        var range = new Utf8Range(_buffer.Length, length);
        _buffer.Advance(length);
        return range;
    }

    public Utf8Range Append(ReadOnlySpan<byte> value)
    {
        value.CopyTo(GetSpan(value.Length));
        return Commit(value.Length);
    }

    public Utf8Range Append(in ReadOnlySequence<byte> value)
    {
        int length = checked((int)value.Length);
        value.CopyTo(GetSpan(length));
        return Commit(length);
    }

    public void Reset() => _buffer.Reset();
}
