using System.Buffers;
using Microsoft.AspNetCore.Http.Features;

namespace Memo.Ingest.Streams;

/// <summary>
/// The upgraded connection under a stream WebSocket, so that several events ready at once leave in one write. The
/// WebSocket writes every message (and every ping) straight to its stream, and Kestrel sends each write at once: a
/// client with ten events ready cost ten sends. Between <see cref="BeginBatch"/> and <see cref="EndBatchAsync"/>,
/// writes are gathered (up to <see cref="MaxBatchBytes"/>, then written through) and sent together; outside a batch,
/// and for the WebSocket's own pings and close frames, writes go through at once. Writes and the batch's end are
/// serialized by a gate: the WebSocket may send a ping from its timer while the session ends a batch.
/// </summary>
internal sealed class CoalescingUpgradeStream(Stream inner) : Stream
{
    /// <summary>Past this, a batch is written through without waiting for its end.</summary>
    public const int MaxBatchBytes = 64 * 1024;

    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly ArrayBufferWriter<byte> _batch = new(4096);
    private bool _batching;

    /// <summary>Gathers writes until <see cref="EndBatchAsync"/>.</summary>
    public void BeginBatch() => _batching = true;

    /// <summary>Sends what the batch gathered, in one write.</summary>
    public async ValueTask EndBatchAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            _batching = false;
            await SendGatheredAsync(cancellationToken);
        }
        finally
        {
            _gate.Release();
        }
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_batching && _batch.WrittenCount + buffer.Length <= MaxBatchBytes)
            {
                _batch.Write(buffer.Span);
                return;
            }

            await SendGatheredAsync(cancellationToken);
            await inner.WriteAsync(buffer, cancellationToken);
        }
        finally
        {
            _gate.Release();
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        inner.ReadAsync(buffer, offset, count, cancellationToken);

    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override void Flush() => inner.Flush();

    public override bool CanRead => inner.CanRead;

    public override bool CanWrite => inner.CanWrite;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await inner.DisposeAsync();
        await base.DisposeAsync();
    }

    private async ValueTask SendGatheredAsync(CancellationToken cancellationToken)
    {
        if (_batch.WrittenCount == 0)
        {
            return;
        }

        await inner.WriteAsync(_batch.WrittenMemory, cancellationToken);
        _batch.ResetWrittenCount();
    }

    /// <summary>
    /// Hands the WebSocket middleware a <see cref="CoalescingUpgradeStream"/> instead of the raw upgraded connection.
    /// Installed per request before the middleware runs (it captures the feature when it sees the request).
    /// </summary>
    public sealed class UpgradeFeature(IHttpUpgradeFeature upgrade) : IHttpUpgradeFeature
    {
        public bool IsUpgradableRequest => upgrade.IsUpgradableRequest;

        /// <summary>The stream handed out, once the connection has been upgraded.</summary>
        public CoalescingUpgradeStream? Stream { get; private set; }

        public async Task<Stream> UpgradeAsync() => Stream = new CoalescingUpgradeStream(await upgrade.UpgradeAsync());
    }
}
