using System.Buffers;
using Microsoft.AspNetCore.Http.Features;

namespace Memo.Ingest.Streams;

/// <summary>
/// The upgraded connection under a stream WebSocket, so that several events ready at once leave in one write, and so
/// that the session can ping its client without a timer per connection.
///
/// The WebSocket writes every message straight to its stream, and Kestrel sends each write at once: a client with ten
/// events ready cost ten sends. Between <see cref="BeginBatch"/> and <see cref="EndBatchAsync"/>, writes are gathered
/// (up to <see cref="MaxBatchBytes"/>, then written through) and sent together; outside a batch, and for the
/// WebSocket's own pongs and close frames, writes go through at once. Writes and the batch's end are serialized by a
/// gate: the WebSocket may send a pong from its receive loop while the session ends a batch or pings.
///
/// The WebSocket API cannot send a ping, and the runtime's own keep-alive costs a timer per connection that fires every
/// quarter of the interval (docs/DECISIONS.md 36): <see cref="PingAsync"/> writes the ping frame here, between two of
/// the WebSocket's frames (it writes each frame in one call, under the gate), and <see cref="LastReadAt"/> tells whether
/// the client has answered (a pong, or anything else it sent) since.
/// </summary>
internal sealed class CoalescingUpgradeStream(Stream inner) : Stream
{
    /// <summary>Past this, a batch is written through without waiting for its end.</summary>
    public const int MaxBatchBytes = 64 * 1024;

    // RFC 6455 5.5.2: FIN and opcode 0x9 (ping), no mask (server to client), no payload.
    private static readonly byte[] s_pingFrame = [0x89, 0x00];

    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly ArrayBufferWriter<byte> _batch = new(4096);
    private bool _batching;
    private long _lastReadAt = Environment.TickCount64;

    /// <summary>When the client last sent anything (<see cref="Environment.TickCount64"/>).</summary>
    public long LastReadAt => Volatile.Read(ref _lastReadAt);

    /// <summary>Sends a ping frame; the client's WebSocket answers it with a pong. Never inside a batch.</summary>
    public ValueTask PingAsync(CancellationToken cancellationToken) => WriteAsync(s_pingFrame, cancellationToken);

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

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Heard(await inner.ReadAsync(buffer, cancellationToken));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => Heard(inner.Read(buffer, offset, count));

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

    private int Heard(int read)
    {
        if (read > 0)
        {
            Volatile.Write(ref _lastReadAt, Environment.TickCount64);
        }

        return read;
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
