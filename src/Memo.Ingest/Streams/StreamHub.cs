using System.Collections.Concurrent;
using System.Text;
using System.Threading.Channels;
using Memo.Ingest.Configuration;
using Memo.Ingest.Events;
using Memo.Ingest.Observability;
using Memo.Ingest.Redis;
using Memo.Ingest.Testing;
using StackExchange.Redis;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Memo.Ingest.Streams;

/// <summary>
/// The live-event path of one instance, top to bottom (docs/DECISIONS.md, "One live-event path"):
/// <list type="number">
/// <item><b>Announce.</b> A sequencer that commits a round encodes each event once, as clients receive it, into an
/// <see cref="EventFrame"/>, hands it to <see cref="Announce"/> and PUBLISHes the same bytes; other instances' hubs
/// receive them from their Redis subscription. PostgreSQL is not read on this path.</item>
/// <item><b>Dispatch.</b> One loop takes the frames in arrival order and keeps only the events of accounts that have
/// followers here (<see cref="AccountFeed"/>); everything else is skipped without allocating.</item>
/// <item><b>Repair, in one place.</b> A feed hands on only the next seq. An event past it, a sweep that finds seqs
/// committed a whole interval ago and still not delivered, a dropped frame or a new Redis subscription makes the hub
/// read the missing seqs from the event log for that feed alone; the sweep runs on a real timer, so a lost
/// announcement on a quiet account is late by at most <see cref="StreamOptions.LiveRepairMilliseconds"/>.</item>
/// <item><b>Fan out.</b> A feed offers each batch, one shared array, to its sessions; offering never blocks (a
/// session that cannot keep up cuts itself off with a resync).</item>
/// </list>
/// Both loops are supervised: an exception is logged and counted, a sweep is requested (so what the failed pass
/// dropped is repaired), and the loop starts again.
/// </summary>
internal sealed partial class StreamHub : IHostedService, IAsyncDisposable
{
    private const string CommittedQuery = "SELECT phone_number_id, last_seq FROM accounts WHERE phone_number_id = ANY($1)";

    private readonly NpgsqlDataSource _dataSource;
    private readonly GatewayRedis _redis;
    private readonly IngestMetrics _metrics;
    private readonly FaultInjector _faults;
    private readonly ILogger _logger;
    private readonly StreamOptions _options;
    private readonly ConcurrentDictionary<string, AccountFeed> _feeds = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, AccountFeed>.AlternateLookup<ReadOnlySpan<char>> _feedsByName;
    private readonly Channel<byte[]> _frames;
    private readonly List<AccountFeed> _touched = [];
    private readonly CancellationTokenSource _stopping = new();
    private Task _running = Task.CompletedTask;
    private int _connections;
    private volatile bool _announcementsMissed;

    public StreamHub(NpgsqlDataSource dataSource, GatewayRedis redis, IOptions<StreamOptions> options, IngestMetrics metrics,
        FaultInjector faults, ILogger<StreamHub> logger)
    {
        _dataSource = dataSource;
        _redis = redis;
        _options = options.Value;
        _metrics = metrics;
        _faults = faults;
        _logger = logger;
        _feedsByName = _feeds.GetAlternateLookup<ReadOnlySpan<char>>();
        _frames = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(Math.Max(1, _options.DispatchQueueFrames))
        {
            FullMode = BoundedChannelFullMode.DropWrite,
            SingleReader = true,
        });
        metrics.ObserveFollowedAccounts(() => _feeds.Count);
        Clock = new SessionClock(TimeSpan.FromSeconds(Math.Max(1, _options.HeartbeatSeconds)));
    }

    public StreamOptions Options => _options;

    /// <summary>Heartbeats, unanswered pings and token expiry of every session on this instance.</summary>
    public SessionClock Clock { get; }

    /// <summary>Identifies this instance's frames, which it dispatches at commit and ignores when Redis echoes them.</summary>
    public Guid InstanceId { get; } = Guid.NewGuid();


    public int Connections => Volatile.Read(ref _connections);

    /// <summary>Takes a connection slot; false when the instance is at <see cref="StreamOptions.MaxConnections"/>.</summary>
    public bool TryAdmit()
    {
        if (Interlocked.Increment(ref _connections) <= _options.MaxConnections)
        {
            return true;
        }

        Interlocked.Decrement(ref _connections);
        return false;
    }

    public void Release() => Interlocked.Decrement(ref _connections);

    /// <summary>
    /// Makes <paramref name="session"/> a follower of <paramref name="account"/>, which it has replayed from the log up
    /// to <paramref name="replayedUpTo"/>. Returns the seq up to which the feed had already handed events on: the
    /// session replays up to there, and every later event reaches it through <see cref="StreamSession.Offer"/>.
    /// </summary>
    public long Attach(StreamSession session, string account, long replayedUpTo)
    {
        while (true)
        {
            AccountFeed feed = _feeds.GetOrAdd(account, static (name, seq) => new AccountFeed(name, seq), replayedUpTo);
            lock (feed.Gate)
            {
                if (feed.Closed)
                {
                    continue; // its last follower left just now; a new feed replaces it
                }

                feed.Add(session);
                return feed.DeliveredUpTo;
            }
        }
    }

    public void Detach(StreamSession session, string account)
    {
        if (!_feeds.TryGetValue(account, out AccountFeed? feed))
        {
            return;
        }

        lock (feed.Gate)
        {
            if (feed.Remove(session))
            {
                _feeds.TryRemove(new KeyValuePair<string, AccountFeed>(account, feed));
            }
        }
    }

    /// <summary>Whether any session on this instance follows an account.</summary>
    public bool HasFollowers => !_feeds.IsEmpty;

    /// <summary>Whether a session on this instance follows <paramref name="account"/> (lock-free, unlike
    /// <see cref="HasFollowers"/> on an empty dictionary, so it is the one asked per event).</summary>
    public bool IsFollowed(string account) => _feeds.ContainsKey(account);

    /// <summary>
    /// Hands a frame this instance's sequencer just committed to the dispatcher (which reads it, never changes it:
    /// the same array is published to Redis). Never blocks.
    /// </summary>
    public void Announce(byte[] frame)
    {
        if (!_feeds.IsEmpty)
        {
            Enqueue(frame);
        }
    }

    /// <summary>Asks for a sweep at the next tick that repairs everything committed and not delivered.</summary>
    public void RequestFullSweep() => _announcementsMissed = true;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Whatever was published while we were not subscribed is gone from pub/sub: repair it from the log.
        _redis.Subscribe(_redis.EventChannel, OnPublished, RequestFullSweep);
        Clock.Start();

        _running = Task.WhenAll(
            Task.Run(() => SuperviseAsync("dispatch", DispatchAsync), CancellationToken.None),
            Task.Run(() => SuperviseAsync("sweep", SweepAsync), CancellationToken.None));
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _frames.Writer.TryComplete();
        await _stopping.CancelAsync();
        await _running.WaitAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        _frames.Writer.TryComplete();
        _stopping.Cancel();
        await Clock.DisposeAsync();
    }

    private void OnPublished(RedisChannel channel, RedisValue payload)
    {
        ReadOnlySpan<byte> frame = ((ReadOnlyMemory<byte>)payload).Span;
        // Our own frames were dispatched at commit; with no followers here there is nothing to do. (A frame that is
        // not one is dropped by the dispatcher, with a warning.)
        if (_feeds.IsEmpty || EventFrame.TryReadOrigin(frame, out Guid origin) && origin == InstanceId)
        {
            return;
        }

        Enqueue(frame.ToArray());
    }

    private void Enqueue(byte[] frame)
    {
        if (!_frames.Writer.TryWrite(frame))
        {
            // The dispatcher is behind: the frame is dropped, and its events are read from the log instead.
            _metrics.LiveFramesDropped();
            RequestFullSweep();
        }
    }

    private async Task SuperviseAsync(string loop, Func<Task> body)
    {
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                await body();
                return;
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                Log.LoopFailed(_logger, loop, e);
                _metrics.LiveLoopFailed();
                RequestFullSweep();
                await Task.Delay(TimeSpan.FromMilliseconds(100), CancellationToken.None);
            }
        }
    }

    private async Task DispatchAsync()
    {
        ChannelReader<byte[]> frames = _frames.Reader;
        while (await frames.WaitToReadAsync())
        {
            while (frames.TryRead(out byte[]? frame))
            {
                Dispatch(frame);
            }
        }
    }

    /// <summary>Gathers the frame's events per followed account, then hands each account's on in one batch.</summary>
    private void Dispatch(byte[] frame)
    {
        _touched.Clear();
        try
        {
            var reader = new EventFrame.Reader(frame);
            while (reader.TryReadNext(out ReadOnlySpan<byte> account, out long seq, out Ingest.EventKind kind, out ReadOnlySpan<byte> json))
            {
                AccountFeed? feed = FindFeed(account);
                if (feed is null)
                {
                    continue;
                }

                if (feed.Incoming.Count == 0)
                {
                    _touched.Add(feed);
                }

                feed.Incoming.Add(new StreamEvent(feed.Account, seq, kind, json.ToArray()));
            }
        }
        catch (FormatException e)
        {
            Log.BadFrame(_logger, e.Message);
            _touched.ForEach(static feed => feed.Incoming.Clear());
            return;
        }

        try
        {
            _faults.Hit(FaultInjector.FanOut);
            foreach (AccountFeed feed in _touched)
            {
                bool repair;
                lock (feed.Gate)
                {
                    repair = feed.Accept(feed.Incoming);
                }

                _metrics.LiveEventsDispatched(feed.Incoming.Count);
                if (repair)
                {
                    StartRepair(feed);
                }
            }
        }
        finally
        {
            _touched.ForEach(static feed => feed.Incoming.Clear());
        }
    }

    private AccountFeed? FindFeed(ReadOnlySpan<byte> account)
    {
        if (account.Length > 256)
        {
            return _feeds.GetValueOrDefault(Encoding.UTF8.GetString(account));
        }

        Span<char> name = stackalloc char[256];
        int length = Encoding.UTF8.GetChars(account, name);
        return _feedsByName.TryGetValue(name[..length], out AccountFeed? feed) ? feed : null;
    }

    /// <summary>
    /// On a timer (not an idle timeout: steady traffic on other accounts cannot postpone it), compares each followed
    /// account's committed seq with what its feed delivered (<see cref="AccountFeed.ObserveCommitted"/>).
    /// </summary>
    private async Task SweepAsync()
    {
        // Two sweeps make a decision (seqs seen committed at one and still missing at the next), so the timer ticks
        // twice per interval.
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(Math.Max(20, _options.LiveRepairMilliseconds / 2)));
        while (await timer.WaitForNextTickAsync(_stopping.Token))
        {
            bool missed = _announcementsMissed;
            _announcementsMissed = false;
            AccountFeed[] feeds = [.. _feeds.Values];
            if (feeds.Length == 0)
            {
                continue;
            }

            Dictionary<string, long>? committed = await ReadCommittedAsync(feeds);
            if (committed is null)
            {
                // Nothing is decided without the log; missed announcements are looked for again at the next tick.
                _announcementsMissed |= missed;
                continue;
            }

            foreach (AccountFeed feed in feeds)
            {
                bool repair;
                lock (feed.Gate)
                {
                    repair = !feed.Closed && feed.ObserveCommitted(committed.GetValueOrDefault(feed.Account), missed);
                }

                if (repair)
                {
                    StartRepair(feed);
                }
            }
        }
    }

    private async Task<Dictionary<string, long>?> ReadCommittedAsync(AccountFeed[] feeds)
    {
        var committed = new Dictionary<string, long>(feeds.Length, StringComparer.Ordinal);
        try
        {
            await using NpgsqlCommand command = _dataSource.CreateCommand(CommittedQuery);
            command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. feeds.Select(static f => f.Account)] });
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(_stopping.Token);
            while (await reader.ReadAsync(_stopping.Token))
            {
                committed[reader.GetString(0)] = reader.GetInt64(1);
            }
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
        {
            Log.SweepFailed(_logger, e);
            return null;
        }

        return committed;
    }

    private void StartRepair(AccountFeed feed) => _ = Task.Run(() => RepairAsync(feed), CancellationToken.None);

    /// <summary>
    /// Reads the feed's missing seqs from the log, page by page, until it has caught up with what is known to be
    /// committed. A failed read (PostgreSQL down) is retried with a growing pause; the feed's followers wait, in order.
    /// </summary>
    private async Task RepairAsync(AccountFeed feed)
    {
        var reader = new StreamEventReader();
        var page = new List<StreamEvent>();
        TimeSpan pause = TimeSpan.FromMilliseconds(50);
        while (!_stopping.IsCancellationRequested)
        {
            long after, upTo;
            lock (feed.Gate)
            {
                if (feed.TryEndRepair())
                {
                    return;
                }

                (after, upTo) = (feed.DeliveredUpTo, feed.RepairUpTo);
            }

            page.Clear();
            int accepted = 0;
            try
            {
                _faults.Hit(FaultInjector.RepairRead);
                await reader.ReadAsync(_dataSource, feed.Account, after, upTo, _options.ReplayPageSize, _options.ReplayPageBytes, page, _stopping.Token);
                lock (feed.Gate)
                {
                    accepted = feed.AcceptRepaired(page);
                }

                _metrics.LiveEventsRepaired(accepted);
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                Log.RepairFailed(_logger, feed.Account, e);
                _metrics.LiveLoopFailed();
            }

            if (accepted > 0)
            {
                pause = TimeSpan.FromMilliseconds(50);
                continue;
            }

            // Nothing moved (the read failed, or the seqs are not visible yet): wait before trying again.
            await Task.Delay(pause, CancellationToken.None);
            pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 500, EventName = "BadEventFrame", Level = LogLevel.Warning, Message = "Ignored a malformed event frame: {Reason}")]
        public static partial void BadFrame(ILogger logger, string reason);

        [LoggerMessage(EventId = 501, EventName = "LiveRepairFailed", Level = LogLevel.Warning,
            Message = "Could not read missed events of account {Account} from PostgreSQL; its followers wait (in order) and the read is retried.")]
        public static partial void RepairFailed(ILogger logger, string account, Exception exception);

        [LoggerMessage(EventId = 502, EventName = "LiveSweepFailed", Level = LogLevel.Warning,
            Message = "The live sweep could not read committed seqs from PostgreSQL; it tries again at its next tick.")]
        public static partial void SweepFailed(ILogger logger, Exception exception);

        [LoggerMessage(EventId = 503, EventName = "StreamHubLoopFailed", Level = LogLevel.Error,
            Message = "The stream hub's {Loop} loop failed; it restarts, and a sweep repairs what it dropped.")]
        public static partial void LoopFailed(ILogger logger, string loop, Exception exception);
    }
}
