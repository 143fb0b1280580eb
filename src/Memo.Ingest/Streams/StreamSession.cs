using System.Threading.Channels;
using Memo.Ingest.Configuration;
using Memo.Ingest.Observability;
using Npgsql;

namespace Memo.Ingest.Streams;

/// <summary>
/// One client's stream: for each account it follows, every event after its cursor, once, in seq order.
///
/// The hand-off from PostgreSQL to live delivery is exact because the session never trusts either side alone: it
/// replays the log from its cursor, registers for live events, replays again (whatever committed in between), and
/// from then on takes a live event only if it is the next seq; an event past the next seq makes it replay the gap
/// from the log first, and an event at or below its cursor is a repeat and is dropped. Live events wait in a
/// queue bounded in events: a client that still has events pending when new ones would take it past
/// <see cref="StreamOptions.QueueCapacity"/> is sent a resync signal with its cursors and cut off, so it can never
/// slow the hub, ingestion or other clients. (A burst bigger than the capacity is taken when the queue is empty,
/// so one large commit never cuts off a client that keeps up.)
/// </summary>
internal sealed class StreamSession
{
    private readonly Dictionary<string, long> _cursors;
    private readonly Channel<StreamEvent[]> _inbox = Channel.CreateUnbounded<StreamEvent[]>(new UnboundedChannelOptions { SingleReader = true });
    private readonly StreamOptions _options;
    private readonly CancellationTokenSource _overflow = new();
    private readonly List<StreamEvent> _replay = [];
    private readonly IngestMetrics _metrics;
    private long _pending;
    private readonly string _transport;

    public StreamSession(Dictionary<string, long> cursors, StreamOptions options, IngestMetrics metrics, string transport)
    {
        _cursors = cursors;
        _options = options;
        _metrics = metrics;
        _transport = transport;
    }

    public IReadOnlyCollection<string> Accounts => _cursors.Keys;

    /// <summary>True once the client fell so far behind that it was cut off.</summary>
    public bool Overflowed => _overflow.IsCancellationRequested;

    /// <summary>Called by the hub with the live events of one followed account, in seq order. Never blocks.</summary>
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

    /// <summary>Streams until the client leaves, the server stops, or the client falls behind (then: resync).</summary>
    public async Task RunAsync(StreamHub hub, NpgsqlDataSource dataSource, IStreamTransport transport, CancellationToken cancellationToken)
    {
        // Writes are never cancelled by the overflow itself: a cancelled WebSocket send aborts the socket, and the
        // client should still get its resync once it reads again. They are cancelled only when the client has not
        // taken the pending bytes within the grace period after the overflow (or it left, or the server stops).
        using var afterGrace = new CancellationTokenSource();
        using CancellationTokenRegistration arm = _overflow.Token.Register(
            () => afterGrace.CancelAfter(TimeSpan.FromSeconds(Math.Max(1, _options.ResyncGraceSeconds))));
        using var io = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, afterGrace.Token);
        using var wake = CancellationTokenSource.CreateLinkedTokenSource(io.Token, _overflow.Token);
        try
        {
            await CatchUpAsync(dataSource, transport, io.Token);
            hub.Follow(this);
            await CatchUpAsync(dataSource, transport, io.Token);
            await transport.SendControlAsync("ready", null, _cursors, io.Token);
            await transport.FlushAsync(io.Token);

            var heartbeat = TimeSpan.FromSeconds(Math.Max(1, _options.HeartbeatSeconds));
            while (!Overflowed)
            {
                StreamEvent[]? next = await NextAsync(heartbeat, wake.Token);
                if (Overflowed)
                {
                    break;
                }

                if (next is null)
                {
                    await transport.HeartbeatAsync(io.Token);
                    continue;
                }

                do
                {
                    foreach (StreamEvent live in next)
                    {
                        await DeliverAsync(dataSource, transport, live, io.Token);
                    }

                    Interlocked.Add(ref _pending, -next.Length);
                }
                while (!Overflowed && _inbox.Reader.TryRead(out next));

                await transport.FlushAsync(io.Token);
            }

            // The documented resync signal: where the client is, so it can resume from PostgreSQL.
            await transport.SendControlAsync("resync", "slow_consumer", _cursors, io.Token);
            await transport.FlushAsync(io.Token);
            await transport.CloseAsync("slow_consumer", io.Token);
        }
        catch (OperationCanceledException) when (afterGrace.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            // It did not read even its pending bytes within the grace period: drop the connection.
            transport.Abort();
        }
        finally
        {
            hub.Unfollow(this);
        }
    }

    /// <summary>The next queued events; null after a heartbeat interval without any, or when the session overflowed.</summary>
    private async ValueTask<StreamEvent[]?> NextAsync(TimeSpan heartbeat, CancellationToken wake)
    {
        if (_inbox.Reader.TryRead(out StreamEvent[]? ready))
        {
            return ready;
        }

        using var wait = CancellationTokenSource.CreateLinkedTokenSource(wake);
        wait.CancelAfter(heartbeat);
        try
        {
            await _inbox.Reader.WaitToReadAsync(wait.Token);
        }
        catch (OperationCanceledException) when (!wake.IsCancellationRequested || Overflowed)
        {
            return null;
        }

        return _inbox.Reader.TryRead(out ready) ? ready : null;
    }

    private async Task DeliverAsync(NpgsqlDataSource dataSource, IStreamTransport transport, StreamEvent live, CancellationToken token)
    {
        long cursor = _cursors[live.Account];
        if (live.Seq <= cursor)
        {
            return;
        }

        if (live.Seq > cursor + 1)
        {
            await ReplayAsync(dataSource, transport, live.Account, live.Seq - 1, token);
        }

        if (live.Seq == _cursors[live.Account] + 1 && !Overflowed)
        {
            await SendAsync(transport, live, token);
        }
    }

    private async Task CatchUpAsync(NpgsqlDataSource dataSource, IStreamTransport transport, CancellationToken token)
    {
        foreach (string account in _cursors.Keys.ToArray())
        {
            await ReplayAsync(dataSource, transport, account, long.MaxValue, token);
        }

        await transport.FlushAsync(token);
    }

    /// <summary>Sends the logged events of <paramref name="account"/> after its cursor, up to <paramref name="upTo"/>.</summary>
    private async Task ReplayAsync(NpgsqlDataSource dataSource, IStreamTransport transport, string account, long upTo, CancellationToken token)
    {
        while (true)
        {
            _replay.Clear();
            await StreamEventReader.ReadAsync(dataSource, account, _cursors[account], upTo, _options.ReplayPageSize, _replay, token);
            foreach (StreamEvent logged in _replay)
            {
                if (Overflowed)
                {
                    return;
                }

                await SendAsync(transport, logged, token);
            }

            if (_replay.Count < _options.ReplayPageSize)
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
}
