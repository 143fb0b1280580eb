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
/// bounded queue; a client that lets it fill is sent a resync signal with its cursors and cut off, so it can
/// never slow the hub, ingestion or other clients.
/// </summary>
internal sealed class StreamSession
{
    private readonly Dictionary<string, long> _cursors;
    private readonly Channel<StreamEvent> _inbox;
    private readonly StreamOptions _options;
    private readonly CancellationTokenSource _overflow = new();
    private readonly List<StreamEvent> _replay = [];
    private readonly IngestMetrics _metrics;
    private readonly string _transport;

    public StreamSession(Dictionary<string, long> cursors, StreamOptions options, IngestMetrics metrics, string transport)
    {
        _cursors = cursors;
        _options = options;
        _metrics = metrics;
        _transport = transport;
        _inbox = Channel.CreateBounded<StreamEvent>(new BoundedChannelOptions(options.QueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    public IReadOnlyCollection<string> Accounts => _cursors.Keys;

    /// <summary>True once the client fell so far behind that it was cut off.</summary>
    public bool Overflowed => _overflow.IsCancellationRequested;

    /// <summary>Called by the hub for every live event of a followed account. Never blocks.</summary>
    public void Offer(StreamEvent streamEvent)
    {
        if (!_inbox.Writer.TryWrite(streamEvent) && !_overflow.IsCancellationRequested)
        {
            _overflow.Cancel();
        }
    }

    /// <summary>Streams until the client leaves, the server stops, or the client falls behind (then: resync).</summary>
    public async Task RunAsync(StreamHub hub, NpgsqlDataSource dataSource, IStreamTransport transport, CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _overflow.Token);
        CancellationToken token = stop.Token;
        try
        {
            await CatchUpAsync(dataSource, transport, token);
            hub.Follow(this);
            await CatchUpAsync(dataSource, transport, token);
            await transport.SendControlAsync("ready", null, _cursors, token);
            await transport.FlushAsync(token);

            var heartbeat = TimeSpan.FromSeconds(Math.Max(1, _options.HeartbeatSeconds));
            while (true)
            {
                StreamEvent? next = await NextAsync(heartbeat, token);
                if (next is null)
                {
                    await transport.HeartbeatAsync(token);
                    continue;
                }

                do
                {
                    await DeliverAsync(dataSource, transport, next, token);
                }
                while (_inbox.Reader.TryRead(out next));

                await transport.FlushAsync(token);
            }
        }
        catch (OperationCanceledException) when (Overflowed && !cancellationToken.IsCancellationRequested)
        {
            // The documented resync signal: where the client is, so it can resume from PostgreSQL. The write is
            // bounded: a client that reads nothing at all may never see it.
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            try
            {
                await transport.SendControlAsync("resync", "slow_consumer", _cursors, grace.Token);
                await transport.FlushAsync(grace.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or System.Net.WebSockets.WebSocketException)
            {
            }

            await transport.CloseAsync("slow_consumer");
        }
        finally
        {
            hub.Unfollow(this);
        }
    }

    private async ValueTask<StreamEvent?> NextAsync(TimeSpan heartbeat, CancellationToken token)
    {
        if (_inbox.Reader.TryRead(out StreamEvent? ready))
        {
            return ready;
        }

        using var wait = CancellationTokenSource.CreateLinkedTokenSource(token);
        wait.CancelAfter(heartbeat);
        try
        {
            await _inbox.Reader.WaitToReadAsync(wait.Token);
        }
        catch (OperationCanceledException) when (!token.IsCancellationRequested)
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

        if (live.Seq == _cursors[live.Account] + 1)
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
