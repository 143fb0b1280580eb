using System.Threading.Channels;
using Memo.Ingest.Ingest;
using Memo.Ingest.Observability;
using Memo.Ingest.Redis;
using Memo.Redis;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Memo.Ingest.Events;

/// <summary>
/// Delivers every committed event, from this instance's writers and (through Redis pub/sub) from every other
/// instance's, to this instance's listeners (the live streams): per account in seq order, without gaps and without
/// repeats, from the first event it sees of that account onwards.
///
/// Pub/sub is at-most-once, and two writers may publish in the opposite order of their commits, so the bus never
/// trusts it for completeness: an event whose seq is past the next expected one makes it read the missing seqs from
/// <c>account_events</c> first (they are committed: seqs of an account commit in order), and after any
/// (re)subscription or dropped frame, and every sweep interval in any case (an event published while Redis was
/// down may have no successor to reveal it), it catches up every account it follows from there. Redis only makes
/// delivery fast; PostgreSQL makes it complete.
/// </summary>
internal sealed partial class EventBus : IHostedService, IAsyncDisposable
{
    private const int CatchUpPage = 5000;

    private const string GapQuery = """
        SELECT account, seq, kind, key, status, ts FROM account_events
        WHERE account = $1 AND seq > $2 AND seq < $3 ORDER BY seq
        """;

    private const string CatchUpQuery = """
        SELECT e.account, e.seq, e.kind, e.key, e.status, e.ts
        FROM unnest($1::text[], $2::bigint[]) AS f(account, after)
        JOIN account_events e ON e.account = f.account AND e.seq > f.after
        ORDER BY e.account, e.seq
        LIMIT $3
        """;

    private readonly GatewayRedis _redis;
    private readonly NpgsqlDataSource _dataSource;
    private readonly IngestMetrics _metrics;
    private readonly ILogger _logger;
    private readonly Channel<byte[]?> _inbox;
    private readonly Dictionary<string, long> _delivered = new(StringComparer.Ordinal);
    private readonly List<CommittedEvent> _decoded = [];
    private readonly byte[] _origin;
    private readonly TimeSpan _sweepInterval;
    private Action<CommittedEvent>[] _listeners = [];
    private RedisSubscriber? _subscriber;
    private Task _dispatching = Task.CompletedTask;
    private volatile bool _catchUpNeeded;

    public EventBus(GatewayRedis redis, NpgsqlDataSource dataSource, IngestMetrics metrics, ILogger<EventBus> logger)
    {
        _redis = redis;
        _dataSource = dataSource;
        _metrics = metrics;
        _logger = logger;
        _origin = InstanceId.ToByteArray();
        _sweepInterval = TimeSpan.FromMilliseconds(Math.Max(100, redis.Settings.SweepIntervalMilliseconds));
        _inbox = Channel.CreateBounded<byte[]?>(new BoundedChannelOptions(redis.Settings.EventQueueCapacity)
        {
            FullMode = BoundedChannelFullMode.DropWrite,
            SingleReader = true,
        });
    }

    /// <summary>Identifies this instance's frames, which it delivers locally and ignores when Redis echoes them.</summary>
    public Guid InstanceId { get; } = Guid.NewGuid();

    /// <summary>The Redis channel frames are published on.</summary>
    public string ChannelName => _redis.EventChannel;

    /// <summary>
    /// Adds a listener for every event from now on. It runs on the bus's dispatch loop, one event at a time, so it
    /// must be quick and must not block. Dispose the result to stop.
    /// </summary>
    public IDisposable Subscribe(Action<CommittedEvent> listener)
    {
        ImmutableUpdate(listeners => [.. listeners, listener]);
        return new Subscription(this, listener);
    }

    /// <summary>Hands a frame committed by this instance to the local listeners (the writer publishes it to Redis).</summary>
    public void DeliverLocal(ReadOnlySpan<byte> frame) => Enqueue(frame.ToArray());

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_redis.ConnectionOptions is not null)
        {
            _subscriber = RedisSubscriber.Create(_redis.ConnectionOptions, [ChannelName], OnPublished);
            _subscriber.StateChanged += OnSubscriptionChanged;
        }

        _dispatching = Task.Run(DispatchAsync, CancellationToken.None);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _inbox.Writer.TryComplete();
        await _dispatching.WaitAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        _inbox.Writer.TryComplete();
        // The container disposes this twice (as itself and as a hosted service); the subscriber ignores the second.
        if (_subscriber is not null)
        {
            await _subscriber.DisposeAsync();
        }
    }

    private void OnPublished(ReadOnlySpan<byte> channel, ReadOnlyMemory<byte> payload)
    {
        ReadOnlySpan<byte> frame = payload.Span;
        // Our own frames were delivered locally at commit time.
        if (frame.Length >= 17 && frame.Slice(1, 16).SequenceEqual(_origin))
        {
            return;
        }

        Enqueue(frame.ToArray());
    }

    private void OnSubscriptionChanged(RedisConnectionChange change)
    {
        if (change.IsConnected)
        {
            // Whatever was published while we were not subscribed is gone from pub/sub: catch up from PostgreSQL.
            _catchUpNeeded = true;
            _inbox.Writer.TryWrite(null);
        }
    }

    private void Enqueue(byte[] frame)
    {
        if (!_inbox.Writer.TryWrite(frame))
        {
            // The dispatcher is behind; the frame is dropped and the events are read from PostgreSQL instead.
            _metrics.BusFramesDropped();
            _catchUpNeeded = true;
        }
    }

    private async Task DispatchAsync()
    {
        ChannelReader<byte[]?> inbox = _inbox.Reader;
        while (true)
        {
            if (_catchUpNeeded)
            {
                _catchUpNeeded = false;
                await GuardAsync(CatchUpAsync());
            }

            bool more;
            using (var sweep = new CancellationTokenSource(_sweepInterval))
            {
                try
                {
                    more = await inbox.WaitToReadAsync(sweep.Token);
                }
                catch (OperationCanceledException)
                {
                    _catchUpNeeded = true;
                    continue;
                }
            }

            if (!more)
            {
                return;
            }

            while (inbox.TryRead(out byte[]? frame))
            {
                if (frame is not null)
                {
                    await GuardAsync(DispatchFrameAsync(frame));
                }
            }
        }
    }

    /// <summary>The dispatch loop must outlive any failure: what it could not deliver, a later catch-up will.</summary>
    private async Task GuardAsync(Task work)
    {
        try
        {
            await work;
        }
        catch (Exception e)
        {
            Log.DispatchFailed(_logger, e);
            _catchUpNeeded = true;
        }
    }

    private async Task DispatchFrameAsync(byte[] frame)
    {
        _decoded.Clear();
        try
        {
            EventFrame.Read(frame, _decoded);
        }
        catch (FormatException e)
        {
            Log.BadFrame(_logger, e.Message);
            return;
        }

        foreach (CommittedEvent committed in _decoded)
        {
            if (!_delivered.TryGetValue(committed.Account, out long last))
            {
                // The first event seen of this account: following starts here.
                Deliver(committed);
                continue;
            }

            if (committed.Seq <= last)
            {
                continue;
            }

            if (committed.Seq > last + 1 && !await FillGapAsync(committed.Account, last, committed.Seq))
            {
                continue;
            }

            if (committed.Seq == _delivered[committed.Account] + 1)
            {
                Deliver(committed);
            }
        }
    }

    /// <summary>Delivers the seqs between <paramref name="after"/> and <paramref name="before"/> from the log.</summary>
    private async Task<bool> FillGapAsync(string account, long after, long before)
    {
        try
        {
            await using NpgsqlCommand command = _dataSource.CreateCommand(GapQuery);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = account });
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = after });
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = before });
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
            int filled = 0;
            while (await reader.ReadAsync())
            {
                filled += DeliverIfNext(ReadEvent(reader)) ? 1 : 0;
            }

            _metrics.BusEventsBackfilled(filled);
            return true;
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
        {
            // Nothing is delivered out of order: the account waits until the log can be read again.
            Log.BackfillFailed(_logger, e);
            _catchUpNeeded = true;
            return false;
        }
    }

    private async Task CatchUpAsync()
    {
        try
        {
            while (_delivered.Count > 0)
            {
                string[] accounts = [.. _delivered.Keys];
                long[] after = [.. _delivered.Values];
                await using NpgsqlCommand command = _dataSource.CreateCommand(CatchUpQuery);
                command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = accounts });
                command.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = after });
                command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = CatchUpPage });
                int rows = 0;
                int filled = 0;
                await using (NpgsqlDataReader reader = await command.ExecuteReaderAsync())
                {
                    while (await reader.ReadAsync())
                    {
                        rows++;
                        filled += DeliverIfNext(ReadEvent(reader)) ? 1 : 0;
                    }
                }

                _metrics.BusEventsBackfilled(filled);
                if (rows < CatchUpPage)
                {
                    return;
                }
            }
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
        {
            Log.BackfillFailed(_logger, e);
            _catchUpNeeded = true;
        }
    }

    private bool DeliverIfNext(CommittedEvent committed)
    {
        if (committed.Seq != _delivered[committed.Account] + 1)
        {
            return false;
        }

        Deliver(committed);
        return true;
    }

    private void Deliver(CommittedEvent committed)
    {
        _delivered[committed.Account] = committed.Seq;
        foreach (Action<CommittedEvent> listener in Volatile.Read(ref _listeners))
        {
            try
            {
                listener(committed);
            }
            catch (Exception e)
            {
                Log.ListenerFailed(_logger, e);
            }
        }

        _metrics.BusEventDelivered();
    }

    private static CommittedEvent ReadEvent(NpgsqlDataReader reader) => new(
        reader.GetString(0), reader.GetInt64(1), (EventKind)reader.GetInt16(2), reader.GetString(3),
        reader.IsDBNull(4) ? null : reader.GetString(4), reader.IsDBNull(5) ? 0 : reader.GetInt64(5));

    private void ImmutableUpdate(Func<Action<CommittedEvent>[], Action<CommittedEvent>[]> update)
    {
        Action<CommittedEvent>[] current, next;
        do
        {
            current = Volatile.Read(ref _listeners);
            next = update(current);
        }
        while (Interlocked.CompareExchange(ref _listeners, next, current) != current);
    }

    private sealed class Subscription(EventBus bus, Action<CommittedEvent> listener) : IDisposable
    {
        public void Dispose() => bus.ImmutableUpdate(listeners => [.. listeners.Where(l => l != listener)]);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 500, EventName = "BadEventFrame", Level = LogLevel.Warning, Message = "Ignored a malformed event frame on the bus: {Reason}")]
        public static partial void BadFrame(ILogger logger, string reason);

        [LoggerMessage(EventId = 501, EventName = "BackfillFailed", Level = LogLevel.Warning,
            Message = "Could not read missed events from PostgreSQL; live delivery for the affected accounts resumes once it can.")]
        public static partial void BackfillFailed(ILogger logger, Exception exception);

        [LoggerMessage(EventId = 502, EventName = "ListenerFailed", Level = LogLevel.Error, Message = "An event listener threw.")]
        public static partial void ListenerFailed(ILogger logger, Exception exception);

        [LoggerMessage(EventId = 503, EventName = "DispatchFailed", Level = LogLevel.Error,
            Message = "Event dispatch failed; the bus catches up from the event log.")]
        public static partial void DispatchFailed(ILogger logger, Exception exception);
    }
}
