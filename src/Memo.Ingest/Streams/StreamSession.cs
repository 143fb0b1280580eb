using System.Threading.Channels;
using Memo.Ingest.Configuration;
using Memo.Ingest.Observability;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Memo.Ingest.Streams;

/// <summary>
/// One client's stream: for each account it follows, every event after its cursor, once, in seq order, until the
/// client leaves, falls behind, or its token expires.
///
/// The hand-off from the log to live delivery: the session replays each account from its cursor to the log's end,
/// attaches to the account's <see cref="AccountFeed"/>, which answers up to which seq it has already handed events on,
/// replays up to there, and from then on takes what the feed offers. Feeds hand on contiguous seqs only, so the
/// session never repairs anything: it drops what it already has (seq at or below its cursor), and a seq past the next
/// one would be a broken promise of the hub, answered with a resync rather than a silent gap.
///
/// Memory stays bounded on both phases. Replay pages hold at most <see cref="StreamOptions.ReplayPageBytes"/> of
/// events and are flushed before the next is read, so a slow reader slows its replay instead of filling the server.
/// Live events wait in a queue bounded in events: a client that still has events pending when new ones would take it
/// past <see cref="StreamOptions.QueueCapacity"/> is sent a resync signal with its cursors and cut off, so it can never
/// slow the hub, ingestion or other clients. (A burst bigger than the capacity is taken when the queue is empty, so
/// one large commit never cuts off a client that keeps up.)
/// </summary>
internal sealed partial class StreamSession
{
    /// <summary>Queued to wake the live loop without events: see <see cref="Interrupt"/>.</summary>
    private static readonly StreamEvent[] Interruption = [];

    private readonly Dictionary<string, long> _cursors;
    private readonly Channel<StreamEvent[]> _inbox = Channel.CreateUnbounded<StreamEvent[]>(new UnboundedChannelOptions { SingleReader = true });
    private readonly StreamOptions _options;
    private readonly CancellationTokenSource _overflow = new();
    private readonly List<StreamEvent> _replay = [];
    private readonly StreamEventReader _reader = new();
    private readonly IngestMetrics _metrics;
    private readonly string _transport;
    private readonly ILogger _logger;
    // Cancelled by Tick once the token has expired: _expiresAt, like the two below, is in Environment.TickCount64 ms.
    private readonly CancellationTokenSource _expired = new();
    private readonly long _expiresAt;
    // Set once the session streams: until then the clock only watches the token.
    private IStreamTransport? _liveTransport;
    // When the client last got something (a flush of live events, or the heartbeat's wake-up): written by the session
    // and by the clock's thread.
    private long _lastSentAt = Environment.TickCount64;
    private long _pending;

    public StreamSession(Dictionary<string, long> cursors, StreamOptions options, IngestMetrics metrics, string transport,
        DateTimeOffset tokenExpires, ILogger logger)
    {
        _cursors = cursors;
        _options = options;
        _metrics = metrics;
        _transport = transport;
        _logger = logger;
        _expiresAt = Environment.TickCount64 + (long)UntilExpiry(tokenExpires).TotalMilliseconds;
    }

    public IReadOnlyCollection<string> Accounts => _cursors.Keys;

    /// <summary>True once the client fell so far behind that it was cut off.</summary>
    public bool Overflowed => _overflow.IsCancellationRequested;

    /// <summary>True once the <see cref="SessionClock"/> found the token expired (the session then ends).</summary>
    public bool Expired => _expired.IsCancellationRequested;

    /// <summary>Called by a feed with the next events of one account, in seq order. Never blocks.</summary>
    public void Offer(StreamEvent[] events)
    {
        if (_overflow.IsCancellationRequested)
        {
            return;
        }

        long pending = Volatile.Read(ref _pending);
        if (pending > 0 && pending + events.Length > _options.QueueCapacity)
        {
            _overflow.Cancel();
            return;
        }

        Interlocked.Add(ref _pending, events.Length);
        _inbox.Writer.TryWrite(events);
    }

    /// <summary>
    /// Called by the <see cref="SessionClock"/> (at <paramref name="now"/>, <see cref="Environment.TickCount64"/>): ends
    /// the session once its token has expired, drops a client that left a heartbeat unanswered for two intervals, and
    /// wakes the session for a heartbeat when its client has heard nothing for an interval. Never blocks.
    /// </summary>
    public void Tick(long now)
    {
        if (now >= _expiresAt)
        {
            if (!_expired.IsCancellationRequested)
            {
                // Runs the session's wake registration, which queues the interruption.
                _expired.Cancel();
            }

            return;
        }

        // A transport that keeps itself alive (a WebSocket pinged by the runtime) needs neither heartbeats nor the check.
        if (Volatile.Read(ref _liveTransport) is not { KeepsItselfAlive: false } transport)
        {
            return;
        }

        long heartbeat = Math.Max(1, _options.HeartbeatSeconds) * 1000L;
        if (transport.IsUnresponsive(now, 2 * heartbeat))
        {
            // What the runtime's keep-alive did: abort, which ends the connection's receive loop and with it the session.
            Log.Unresponsive(_logger, _transport);
            transport.Abort();
            return;
        }

        if (now - Volatile.Read(ref _lastSentAt) >= heartbeat)
        {
            Volatile.Write(ref _lastSentAt, now);
            Interrupt();
        }
    }

    /// <summary>Streams until the client leaves, the server stops, the client falls behind (then: resync) or the
    /// token expires (then: token_expired).</summary>
    public async Task RunAsync(StreamHub hub, NpgsqlDataSource dataSource, IStreamTransport transport, CancellationToken cancellationToken)
    {
        // Writes are never cancelled by the overflow itself: a cancelled WebSocket send aborts the socket, and the
        // client should still get its resync once it reads again. They are cancelled only when the client has not
        // taken the pending bytes within the grace period after the overflow (or it left, or the server stops).
        using var afterGrace = new CancellationTokenSource();
        using CancellationTokenRegistration arm = _overflow.Token.Register(
            () => afterGrace.CancelAfter(TimeSpan.FromSeconds(Math.Max(1, _options.ResyncGraceSeconds))));
        using var io = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, afterGrace.Token);
        using var wake = CancellationTokenSource.CreateLinkedTokenSource(io.Token, _overflow.Token, _expired.Token);
        // The live loop waits on its queue alone (no token, no timer per wait: the queue then reuses one waiter, and a
        // client with a thousand events a second costs no timer operations). Whatever must interrupt the wait drops
        // the empty batch into the queue: the end of the session, and the heartbeat (both from the hub's clock).
        using CancellationTokenRegistration interrupt = wake.Token.UnsafeRegister(static session => ((StreamSession)session!).Interrupt(), this);
        // From now on the clock wakes the session for a heartbeat when it is quiet: SSE gets a comment and a WebSocket a
        // ping frame (unless the runtime pings it, KeepsItselfAlive).
        Volatile.Write(ref _liveTransport, transport);
        hub.Clock.Add(this);
        var attached = new List<string>(_cursors.Count);
        string? endReason = null;
        try
        {
            foreach (string account in _cursors.Keys.ToArray())
            {
                await ReplayAsync(dataSource, transport, account, long.MaxValue, io.Token);
            }

            foreach (string account in _cursors.Keys.ToArray())
            {
                long handedOn = hub.Attach(this, account, _cursors[account]);
                attached.Add(account);
                if (handedOn > _cursors[account])
                {
                    await ReplayAsync(dataSource, transport, account, handedOn, io.Token);
                }
            }

            await transport.SendControlAsync("ready", null, _cursors, io.Token);
            await transport.FlushAsync(io.Token);

            while (endReason is null)
            {
                // The session's state is in the tokens; an interruption only wakes the wait (and a drain below may
                // have taken it).
                StreamEvent[]? next = wake.IsCancellationRequested ? null : await NextAsync();
                if (Overflowed)
                {
                    endReason = "slow_consumer";
                    break;
                }

                if (_expired.IsCancellationRequested)
                {
                    endReason = "token_expired";
                    break;
                }

                if (next is null)
                {
                    io.Token.ThrowIfCancellationRequested();
                    await transport.HeartbeatAsync(io.Token);
                    continue;
                }

                do
                {
                    foreach (StreamEvent live in next)
                    {
                        if (!await DeliverAsync(transport, live, io.Token))
                        {
                            endReason = "gap";
                            break;
                        }
                    }

                    Interlocked.Add(ref _pending, -next.Length);
                }
                while (endReason is null && !Overflowed && _inbox.Reader.TryRead(out next));

                // Everything that was ready went into the response together: one flush (SSE) for the lot.
                await transport.FlushAsync(io.Token);
                Volatile.Write(ref _lastSentAt, Environment.TickCount64);
            }

            if (endReason == "token_expired")
            {
                await transport.SendControlAsync("token_expired", null, _cursors, io.Token);
            }
            else
            {
                // The documented resync signal: where the client is, so it can resume from PostgreSQL.
                await transport.SendControlAsync("resync", endReason, _cursors, io.Token);
            }

            await transport.FlushAsync(io.Token);
            await transport.CloseAsync(endReason, io.Token);
        }
        catch (OperationCanceledException) when (afterGrace.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            // It did not read even its pending bytes within the grace period: drop the connection.
            transport.Abort();
        }
        finally
        {
            hub.Clock.Remove(this);
            foreach (string account in attached)
            {
                hub.Detach(this, account);
            }
        }
    }

    private static TimeSpan UntilExpiry(DateTimeOffset tokenExpires)
    {
        TimeSpan left = tokenExpires - DateTimeOffset.UtcNow;
        // A token lives far shorter than 30 days; the bound keeps DateTimeOffset.MaxValue (tests) from overflowing.
        return left <= TimeSpan.Zero ? TimeSpan.Zero : left > TimeSpan.FromDays(30) ? TimeSpan.FromDays(30) : left;
    }

    /// <summary>The next queued events; null when interrupted (a heartbeat is due, or the session must end).</summary>
    private async ValueTask<StreamEvent[]?> NextAsync()
    {
        StreamEvent[]? ready;
        while (!_inbox.Reader.TryRead(out ready))
        {
            await _inbox.Reader.WaitToReadAsync();
        }

        return ready.Length == 0 ? null : ready;
    }

    private void Interrupt() => _inbox.Writer.TryWrite(Interruption);

    /// <summary>Sends a live event that continues the account; false when it does not (the hub broke its promise).</summary>
    private async ValueTask<bool> DeliverAsync(IStreamTransport transport, StreamEvent live, CancellationToken token)
    {
        long cursor = _cursors[live.Account];
        if (live.Seq <= cursor)
        {
            return true;
        }

        if (live.Seq != cursor + 1)
        {
            Log.Gap(_logger, live.Account, cursor, live.Seq);
            return false;
        }

        await SendAsync(transport, live, token);
        return true;
    }

    /// <summary>
    /// Sends the logged events of <paramref name="account"/> after its cursor, up to <paramref name="upTo"/>, a page at
    /// a time, each page flushed (and so taken by the client, but for the transport's buffer) before the next is read.
    /// </summary>
    private async Task ReplayAsync(NpgsqlDataSource dataSource, IStreamTransport transport, string account, long upTo, CancellationToken token)
    {
        while (!Overflowed)
        {
            _replay.Clear();
            await _reader.ReadAsync(dataSource, account, _cursors[account], upTo, _options.ReplayPageSize, _options.ReplayPageBytes, _replay, token);
            foreach (StreamEvent logged in _replay)
            {
                await SendAsync(transport, logged, token);
            }

            int read = _replay.Count;
            _replay.Clear();
            await transport.FlushAsync(token);
            if (read == 0 || _cursors[account] >= upTo)
            {
                return;
            }
        }
    }

    private ValueTask SendAsync(IStreamTransport transport, StreamEvent streamEvent, CancellationToken token)
    {
        _cursors[streamEvent.Account] = streamEvent.Seq;
        _metrics.StreamEventSent(_transport);
        return transport.SendEventAsync(streamEvent, _cursors, token);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 601, EventName = "StreamGap", Level = LogLevel.Error,
            Message = "A live event of account {Account} skipped seqs (cursor {Cursor}, event {Seq}); the client is sent a resync.")]
        public static partial void Gap(ILogger logger, string account, long cursor, long seq);

        // Debug: a client that vanished is routine, and a flood of them must not flood the log.
        [LoggerMessage(EventId = 602, EventName = "StreamUnresponsive", Level = LogLevel.Debug,
            Message = "A {Transport} stream client left a ping unanswered for two heartbeat intervals; the connection is dropped.")]
        public static partial void Unresponsive(ILogger logger, string transport);
    }
}
