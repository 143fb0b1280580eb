using System.Buffers;
using System.Net.WebSockets;

namespace Memo.Ingest.Streams;

/// <summary>
/// A raw WebSocket: one event per message, a JSON text frame (<c>{"type":"event",…}</c>) or, for the
/// <c>memo.msgpack.v1</c> subprotocol, the same data as a MessagePack binary frame. Control messages
/// (<c>{"type":"ready"|"resync"|"token_expired",…}</c>) are always JSON text. Pings are the WebSocket's own keep-alive.
/// Events written between two flushes leave in one send when the connection is a <see cref="CoalescingUpgradeStream"/>.
/// </summary>
internal sealed class WebSocketTransport(WebSocket socket, bool messagePack, CoalescingUpgradeStream? coalescing) : IStreamTransport
{
    public const string MessagePackSubprotocol = "memo.msgpack.v1";

    private readonly ArrayBufferWriter<byte> _control = new(256);
    // When the oldest ping not answered yet was sent (Environment.TickCount64); read by the session clock's thread.
    private long _pingSentAt;

    public ValueTask SendEventAsync(StreamEvent streamEvent, IReadOnlyDictionary<string, long> cursors, CancellationToken cancellationToken)
    {
        coalescing?.BeginBatch();
        return messagePack
            ? socket.SendAsync(new ReadOnlyMemory<byte>(streamEvent.MessagePack), WebSocketMessageType.Binary, endOfMessage: true, cancellationToken)
            : socket.SendAsync(new ReadOnlyMemory<byte>(streamEvent.Json), WebSocketMessageType.Text, endOfMessage: true, cancellationToken);
    }

    public ValueTask SendControlAsync(string type, string? reason, IReadOnlyDictionary<string, long> cursors, CancellationToken cancellationToken)
    {
        coalescing?.BeginBatch();
        _control.ResetWrittenCount();
        StreamControlMessage.Write(_control, type, reason, cursors);

        return socket.SendAsync(_control.WrittenMemory, WebSocketMessageType.Text, endOfMessage: true, cancellationToken);
    }

    /// <summary>Without the coalescing stream (no upgrade feature of ours), the WebSocket middleware's keep-alive pings
    /// the client and drops it when no pong comes (GatewayApplication).</summary>
    public bool KeepsItselfAlive => coalescing is null;

    /// <summary>A ping; <see cref="IsUnresponsive"/> then watches for the client's answer.</summary>
    public ValueTask HeartbeatAsync(CancellationToken cancellationToken)
    {
        if (coalescing is null)
        {
            return ValueTask.CompletedTask;
        }

        // The first unanswered ping counts: a later one does not restart the wait for an answer.
        if (Volatile.Read(ref _pingSentAt) <= coalescing.LastReadAt)
        {
            Volatile.Write(ref _pingSentAt, Environment.TickCount64);
        }

        return coalescing.PingAsync(cancellationToken);
    }

    /// <summary>True once a ping has gone unanswered (nothing read from the client since) for <paramref name="timeoutMilliseconds"/>.</summary>
    public bool IsUnresponsive(long now, long timeoutMilliseconds)
    {
        long pingSentAt = Volatile.Read(ref _pingSentAt);
        return coalescing is not null && pingSentAt > coalescing.LastReadAt && now - pingSentAt >= timeoutMilliseconds;
    }

    public ValueTask FlushAsync(CancellationToken cancellationToken) => coalescing?.EndBatchAsync(cancellationToken) ?? ValueTask.CompletedTask;

    public void Abort() => socket.Abort();

    public async ValueTask CloseAsync(string reason, CancellationToken cancellationToken)
    {
        if (socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
        {
            WebSocketCloseStatus status = reason switch
            {
                "shutdown" => WebSocketCloseStatus.EndpointUnavailable,
                "slow_consumer" or "token_expired" => WebSocketCloseStatus.PolicyViolation,
                "gap" => WebSocketCloseStatus.InternalServerError,
                _ => WebSocketCloseStatus.NormalClosure,
            };
            try
            {
                // Whatever a stream that ended early left gathered goes first, then the close frame.
                await FlushAsync(cancellationToken);
                await socket.CloseOutputAsync(status, reason, cancellationToken);
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException)
            {
            }
        }
    }
}
