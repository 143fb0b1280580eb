namespace Memo.Ingest.Streams;

/// <summary>How a <see cref="StreamSession"/> talks to its client: SSE or WebSocket.</summary>
internal interface IStreamTransport
{
    /// <summary>Writes an event; it may stay buffered until <see cref="FlushAsync"/>.</summary>
    public ValueTask SendEventAsync(StreamEvent streamEvent, IReadOnlyDictionary<string, long> cursors, CancellationToken cancellationToken);

    /// <summary>Writes a control message: <c>ready</c> (caught up, now live), <c>resync</c> or <c>token_expired</c>
    /// (the stream ends; see docs/API.md).</summary>
    public ValueTask SendControlAsync(string type, string? reason, IReadOnlyDictionary<string, long> cursors, CancellationToken cancellationToken);

    /// <summary>True when the connection proves itself alive without the session (a WebSocket's ping frames); the
    /// session then never calls <see cref="HeartbeatAsync"/>.</summary>
    public bool KeepsItselfAlive { get; }

    /// <summary>Writes and flushes a heartbeat (after a heartbeat interval in which the client got nothing).</summary>
    public ValueTask HeartbeatAsync(CancellationToken cancellationToken);

    /// <summary>True when the client has not answered a heartbeat within <paramref name="timeoutMilliseconds"/> (a
    /// WebSocket's ping); called from the session clock's thread.</summary>
    public bool IsUnresponsive(long now, long timeoutMilliseconds);

    public ValueTask FlushAsync(CancellationToken cancellationToken);

    /// <summary>Ends the stream (a WebSocket close frame with <paramref name="reason"/>).</summary>
    public ValueTask CloseAsync(string reason, CancellationToken cancellationToken);

    /// <summary>Drops the connection at once, without a goodbye (a client that stopped reading).</summary>
    public void Abort();
}
