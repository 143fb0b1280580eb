using System.Diagnostics;
using System.Threading.Channels;
using Memo.Ingest.Configuration;
using Memo.Ingest.Events;
using Memo.Ingest.Ingest;
using Memo.Ingest.Observability;
using Memo.Ingest.Redis;
using Memo.Ingest.Storage;
using Memo.Ingest.Streams;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Memo.Ingest.Sequencing;

/// <summary>
/// One sequencer session: a PostgreSQL connection of its own that holds a member slot and the advisory locks of the
/// shards assigned to it (<see cref="ShardAssignment"/>), and runs <see cref="SequencerSql.Drain"/> over their live
/// records whenever records arrive; its <see cref="HistoryLane"/> sequences their history backfills beside it, on a
/// second connection (<see cref="ShardTurns"/> keeps the two off each other's shards). The locks are session locks: if
/// this process dies, PostgreSQL drops them with the connection and another session takes the shards over at its next
/// rebalance. Its statement is idempotent against a crash at any point: it commits the deletion of the records and
/// their projection together, or neither. Refused data is moved aside by <see cref="SequencerRound"/>.
/// </summary>
internal sealed partial class SequencerLoop : IAsyncDisposable
{
    private readonly int _id;
    private readonly WriterDataSource _dataSource;
    private readonly DatabaseState _database;
    private readonly SequencerOptions _options;
    private readonly IngestMetrics _metrics;
    private readonly SequencerRound _round;
    private readonly ShardTurns _turns = new();
    private readonly HistoryLane _history;
    private readonly ILogger _logger;
    private readonly Channel<bool> _wakeups = Channel.CreateBounded<bool>(new BoundedChannelOptions(1)
    {
        FullMode = BoundedChannelFullMode.DropWrite,
        SingleReader = true,
    });

    private long _recordsSequenced;
    private readonly List<int> _assigned = [];
    private readonly List<int> _members = [];
    private NpgsqlConnection? _connection;
    private NpgsqlCommand? _drain;
    private int _memberSlot = -1;
    private long _nextRebalance;
    private long _lastRoundStarted;
    // The shards the live statement in flight takes from (for isolating what it refused).
    private int[] _roundShards = [];

    public SequencerLoop(int id, WriterDataSource dataSource, DatabaseState database, SequencerOptions options,
        IngestMetrics metrics, Func<CommittedEventPublisher> publishers, DuplicateScreen screen, ILogger logger)
    {
        _id = id;
        _dataSource = dataSource;
        _database = database;
        _options = options;
        _metrics = metrics;
        _logger = logger;
        _round = new SequencerRound(id, options.MaxBatchRecords, metrics, publishers(), screen, logger);
        _history = new HistoryLane(id, dataSource, database, options,
            new SequencerRound(id, options.HistoryRecordsPerRound, metrics, publishers(), screen, logger), _turns, () => Wake(), logger);
    }

    /// <summary>Shards this session holds right now (a gauge).</summary>
    public int OwnedShards => _turns.Owned.Length;

    /// <summary>Inbox records this session has taken (and deleted) so far, in both lanes.</summary>
    public long RecordsSequenced => Interlocked.Read(ref _recordsSequenced) + _history.RecordsSequenced;

    /// <summary>
    /// Records may be waiting: run a round soon; with <paramref name="history"/>, records of a backfill among them, so
    /// the history lane runs a slice too. Never blocks; wake-ups while one is pending coalesce.
    /// </summary>
    public void Wake(bool history = false)
    {
        if (history)
        {
            _history.Wake();
        }

        _wakeups.Writer.TryWrite(true);
    }

    /// <summary>
    /// Runs until <paramref name="stopping"/> is cancelled, then runs rounds until its shards are drained (or the
    /// database refuses), so that what this instance acknowledged before a graceful stop is visible when it exits. The
    /// history lane runs beside it and is waited for: its slices need this session's shard locks.
    /// </summary>
    public async Task RunAsync(CancellationToken stopping)
    {
        Task history = Task.Run(() => _history.RunAsync(stopping), CancellationToken.None);
        try
        {
            await RunLiveAsync(stopping);
        }
        finally
        {
            await history;
        }
    }

    private async Task RunLiveAsync(CancellationToken stopping)
    {
        while (true)
        {
            // Sampled before the round: only a round that starts after the stop was requested (so after the writers
            // appended their last records) may be the last one.
            bool stopRequested = stopping.IsCancellationRequested;
            bool full = false;
            try
            {
                if (_database.SchemaReady)
                {
                    await EnsureSessionAsync();
                    if (Stopwatch.GetTimestamp() >= _nextRebalance)
                    {
                        await RebalanceAsync();
                    }

                    if (_turns.Owned.Length > 0)
                    {
                        full = await RoundAsync();
                    }
                }
            }
            catch (PostgresException e) when (SqlStates.IsDataError(e))
            {
                await _round.IsolateRefusedAsync(_connection!, _roundShards, e, history: false);
                continue;
            }
            catch (PostgresException e) when (SqlStates.IsRetryable(e))
            {
                continue;
            }
            catch (Exception e)
            {
                // The connection (and with it the shard locks) is gone or unusable: start a new session after a pause.
                Log.RoundFailed(_logger, _id, e);
                _metrics.SequencerFailed();
                await ResetAsync();
                if (stopping.IsCancellationRequested)
                {
                    return;
                }

                await PauseAsync(TimeSpan.FromMilliseconds(Math.Max(100, _options.PollMilliseconds)), stopping);
                continue;
            }

            if (stopRequested && !full)
            {
                return;
            }

            if (!full && !stopping.IsCancellationRequested)
            {
                await WaitForWorkAsync(stopping);
            }
        }
    }

    /// <summary>
    /// One live statement, in its own transaction: takes up to the round's limit of live records of the owned shards
    /// (but the one a history slice holds), projects them, and publishes the events it assigned. Returns true when it
    /// took a full batch (more are probably waiting).
    /// </summary>
    private async Task<bool> RoundAsync()
    {
        _lastRoundStarted = Stopwatch.GetTimestamp();
        int limit = _round.Limit;
        _roundShards = _turns.BeginLive();
        try
        {
            ((NpgsqlParameter<int[]>)_drain!.Parameters[0]).TypedValue = _roundShards;
            ((NpgsqlParameter<int>)_drain.Parameters[1]).TypedValue = limit;
            long taken = await _round.RunAsync(_drain, history: false);
            Interlocked.Add(ref _recordsSequenced, taken);
            return taken >= limit;
        }
        finally
        {
            _turns.EndLive();
        }
    }

    private async Task EnsureSessionAsync()
    {
        if (_connection is { State: System.Data.ConnectionState.Open })
        {
            return;
        }

        await ResetAsync();
        NpgsqlConnection connection = await _dataSource.OpenConnectionAsync();
        try
        {
            await using (NpgsqlCommand join = new(SequencerSql.JoinMembers, connection))
            {
                _memberSlot = await join.ExecuteScalarAsync() is int slot ? slot : -1;
            }

            // Live statements take no history records ($3 = 0): the history lane does.
            var drain = new NpgsqlCommand(SequencerSql.Drain, connection);
            drain.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = [] });
            drain.Parameters.Add(new NpgsqlParameter<int> { TypedValue = _round.Limit });
            drain.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 0 });
            await drain.PrepareAsync();
            _connection = connection;
            _drain = drain;
            _nextRebalance = 0;
            _turns.SessionChanged(connection.ProcessID);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>Takes the shards assigned to this session and gives up the others (between rounds only).</summary>
    private async Task RebalanceAsync()
    {
        _members.Clear();
        await using (NpgsqlCommand members = new(SequencerSql.Members, _connection))
        await using (NpgsqlDataReader reader = await members.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                _members.Add(reader.GetInt32(0));
            }
        }

        ShardAssignment.For(_members.IndexOf(_memberSlot), _members.Count, SequencerSql.ShardCount, _assigned);
        int[] current = _turns.Owned;
        List<int> owned = [.. current];
        int[] release = [.. current.Where(s => !_assigned.Contains(s))];
        int[] acquire = [.. _assigned.Where(s => !current.Contains(s))];
        if (release.Length > 0)
        {
            // Not while a history slice of this session writes one of them.
            await _turns.GiveUpAsync(release);
            await using NpgsqlCommand command = new(SequencerSql.Release, _connection);
            command.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = release });
            await command.ExecuteScalarAsync();
            owned.RemoveAll(release.Contains);
        }

        if (acquire.Length > 0)
        {
            await using NpgsqlCommand command = new(SequencerSql.Acquire, _connection);
            command.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = acquire });
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                owned.Add(reader.GetInt32(0));
            }
        }

        owned.Sort();
        _turns.SetOwned([.. owned]);
        // Shards still held by a session that is leaving are retried sooner than the regular interval.
        int interval = owned.Count < _assigned.Count ? Math.Min(250, _options.RebalanceMilliseconds) : _options.RebalanceMilliseconds;
        _nextRebalance = Stopwatch.GetTimestamp() + (interval * Stopwatch.Frequency / 1000);
        if (release.Length > 0 || acquire.Length > 0)
        {
            Log.Rebalanced(_logger, _id, _members.Count, owned.Count);
        }
    }

    /// <summary>
    /// Waits for a wake-up (or the poll interval, or the next rebalance), then keeps rounds at least
    /// <see cref="SequencerOptions.MinRoundIntervalMilliseconds"/> apart so that a trickle is taken in groups.
    /// </summary>
    private async Task WaitForWorkAsync(CancellationToken stopping)
    {
        if (!_wakeups.Reader.TryRead(out _))
        {
            long untilRebalance = Math.Max(0, _nextRebalance - Stopwatch.GetTimestamp()) * 1000 / Stopwatch.Frequency;
            int wait = (int)Math.Min(_options.PollMilliseconds, Math.Max(1, untilRebalance));
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            timeout.CancelAfter(wait);
            try
            {
                await _wakeups.Reader.WaitToReadAsync(timeout.Token);
                _wakeups.Reader.TryRead(out _);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }

        TimeSpan sinceLast = Stopwatch.GetElapsedTime(_lastRoundStarted);
        TimeSpan minimum = TimeSpan.FromMilliseconds(_options.MinRoundIntervalMilliseconds);
        if (sinceLast < minimum)
        {
            await PauseAsync(minimum - sinceLast, stopping);
        }
    }

    private static async Task PauseAsync(TimeSpan delay, CancellationToken stopping)
    {
        try
        {
            await Task.Delay(delay, stopping);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async ValueTask ResetAsync()
    {
        _turns.SessionChanged(0);
        _memberSlot = -1;
        if (_drain is not null)
        {
            await _drain.DisposeAsync();
            _drain = null;
        }

        if (_connection is not null)
        {
            // Closing the session releases its advisory locks; a broken connection is discarded, never reused.
            await _connection.DisposeAsync();
            _connection = null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await ResetAsync();
        await _history.DisposeAsync();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 700, EventName = "SequencerRoundFailed", Level = LogLevel.Warning,
            Message = "Sequencer {Loop} lost its session; its shards are released and it reconnects. Acknowledged records wait in the inbox.")]
        public static partial void RoundFailed(ILogger logger, int loop, Exception exception);

        [LoggerMessage(EventId = 704, EventName = "SequencerRebalanced", Level = LogLevel.Information,
            Message = "Sequencer {Loop}: {Members} sequencer session(s) live; this one now owns {Shards} shard(s).")]
        public static partial void Rebalanced(ILogger logger, int loop, int members, int shards);
    }
}
