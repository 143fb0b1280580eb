using System.Threading.Channels;
using Memo.Ingest.Configuration;
using Memo.Ingest.Events;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Memo.Ingest.Streams;

/// <summary>
/// Fans committed events out to this instance's stream sessions. It listens to the <see cref="EventBus"/> (which
/// already orders each account's events and repairs gaps), reads each event of a followed account from the log
/// once, with its row, serializes it once, and offers the same <see cref="StreamEvent"/> to every session following
/// that account. Offering never blocks: a session that cannot keep up cuts itself off.
/// </summary>
internal sealed partial class StreamHub : IHostedService
{
    private readonly EventBus _bus;
    private readonly NpgsqlDataSource _dataSource;
    private readonly StreamOptions _options;
    private readonly ILogger _logger;
    private readonly Channel<CommittedEvent> _live = Channel.CreateUnbounded<CommittedEvent>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Dictionary<string, List<StreamSession>> _followers = new(StringComparer.Ordinal);
    private readonly Lock _followersLock = new();
    private readonly Dictionary<string, (long First, long Last)> _ranges = new(StringComparer.Ordinal);
    private readonly List<StreamEvent> _loaded = [];
    private IDisposable? _subscription;
    private Task _running = Task.CompletedTask;
    private int _connections;

    public StreamHub(EventBus bus, NpgsqlDataSource dataSource, IOptions<StreamOptions> options, ILogger<StreamHub> logger)
    {
        _bus = bus;
        _dataSource = dataSource;
        _options = options.Value;
        _logger = logger;
    }

    public StreamOptions Options => _options;

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

    public void Follow(StreamSession session)
    {
        lock (_followersLock)
        {
            foreach (string account in session.Accounts)
            {
                if (!_followers.TryGetValue(account, out List<StreamSession>? sessions))
                {
                    _followers[account] = sessions = [];
                }

                sessions.Add(session);
            }
        }
    }

    public void Unfollow(StreamSession session)
    {
        lock (_followersLock)
        {
            foreach (string account in session.Accounts)
            {
                if (_followers.TryGetValue(account, out List<StreamSession>? sessions) && sessions.Remove(session) && sessions.Count == 0)
                {
                    _followers.Remove(account);
                }
            }
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _subscription = _bus.Subscribe(OnCommitted);
        _running = Task.Run(RunAsync, CancellationToken.None);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _subscription?.Dispose();
        _live.Writer.TryComplete();
        await _running.WaitAsync(cancellationToken);
    }

    private void OnCommitted(CommittedEvent committed)
    {
        // Runs on the bus' dispatch loop: only a dictionary lookup and a queue write.
        bool followed;
        lock (_followersLock)
        {
            followed = _followers.ContainsKey(committed.Account);
        }

        if (followed)
        {
            _live.Writer.TryWrite(committed);
        }
    }

    private async Task RunAsync()
    {
        ChannelReader<CommittedEvent> live = _live.Reader;
        while (await live.WaitToReadAsync())
        {
            // Everything queued now, per account as one seq range (the bus delivers each account's seqs in order).
            _ranges.Clear();
            while (live.TryRead(out CommittedEvent? committed))
            {
                _ranges[committed.Account] = _ranges.TryGetValue(committed.Account, out (long First, long Last) range)
                    ? (range.First, committed.Seq)
                    : (committed.Seq, committed.Seq);
            }

            foreach ((string account, (long first, long last)) in _ranges)
            {
                await PublishAsync(account, first, last);
            }
        }
    }

    private async Task PublishAsync(string account, long first, long last)
    {
        _loaded.Clear();
        try
        {
            await StreamEventReader.ReadAsync(_dataSource, account, first - 1, last, (int)Math.Min(int.MaxValue, last - first + 1), _loaded, CancellationToken.None);
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
        {
            // The sessions see the next event as a gap and replay it from the log themselves.
            Log.LoadFailed(_logger, account, e);
            return;
        }

        StreamSession[] sessions;
        lock (_followersLock)
        {
            sessions = _followers.TryGetValue(account, out List<StreamSession>? followers) ? [.. followers] : [];
        }

        StreamEvent[] events = [.. _loaded];
        foreach (StreamSession session in sessions)
        {
            session.Offer(events);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 600, EventName = "StreamLoadFailed", Level = LogLevel.Warning,
            Message = "Could not read live events of account {Account} from PostgreSQL; its streams will replay them.")]
        public static partial void LoadFailed(ILogger logger, string account, Exception exception);
    }
}
