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
/// shards assigned to it (<see cref="ShardAssignment"/>), and runs <see cref="SequencerSql.DrainPlain"/> (live traffic
/// without coexistence records) or <see cref="SequencerSql.Drain"/> (everything else) over them whenever records
/// arrive. The locks are session locks: if this process dies, PostgreSQL drops them with the connection and
/// another session takes the shards over at its next rebalance. Its statement is idempotent against a crash at any
/// point: it commits the deletion of the records and their projection together, or neither.
///
/// Data that PostgreSQL refuses is isolated by halving the batch until a single record fails alone; that record goes
/// to <c>dead_letters</c> with the reason, and the loop goes on. A refused record can therefore delay its shards by a
/// few rounds, never stop them.
/// </summary>
internal sealed partial class SequencerLoop : IAsyncDisposable
{
    /// <summary>Where the rows of <see cref="SequencerSql.Drain"/> and <see cref="SequencerSql.DrainPlain"/> carry each event's item columns.</summary>
    private static readonly StreamEventEncoder.Layout EventLayout = new(MessageAt: 6, ConversationAt: 24, ContactAt: 33, ContactBookAt: 36, HistoryAt: 43);

    private readonly int _id;
    private readonly WriterDataSource _dataSource;
    private readonly DatabaseState _database;
    private readonly SequencerOptions _options;
    private readonly IngestMetrics _metrics;
    private readonly CommittedEventPublisher _publisher;
    private readonly DuplicateScreen _screen;
    private readonly ILogger _logger;
    private readonly Action<int> _assignmentChanged;
    private readonly Channel<bool> _wakeups = Channel.CreateBounded<bool>(new BoundedChannelOptions(1)
    {
        FullMode = BoundedChannelFullMode.DropWrite,
        SingleReader = true,
    });

    // The shards this session holds, sorted: the sequencer statement's parameter as it is, replaced (never changed in
    // place) by RebalanceAsync, so the gauge can read it from another thread.
    private int[] _owned = [];
    // The same shards as a mask, read by writers to wake only the sessions that hold what they appended.
    private ulong _ownedMask;
    private long _recordsSequenced;
    private readonly List<int> _assigned = [];
    private readonly List<int> _members = [];
    private NpgsqlConnection? _connection;
    private NpgsqlCommand? _drain;
    private NpgsqlCommand? _drainPlain;
    private NpgsqlCommand? _drainPlainEventsOnly;
    // The last plain statement found a live record that only the general statement handles: the next live round runs it.
    private bool _generalNext;
    private int _memberSlot = -1;
    private long _nextRebalance;
    // Another session changed the assignment or gave shards up: follow it now rather than at the next rebalance.
    private int _rebalanceRequested;
    private long _lastRoundStarted;
    private int _limit;
    private int _historyLimit;
    private bool _roundIsHistory;
    private bool _historyFull = true;
    private long _nextHistoryCheck;
    private int _historyWoken;
    private readonly BackfillYield _backfillYield = BackfillYield.Default();
    private readonly ShardLoad _shardLoad = new();
    // As the leader: the busy load at which busy shards were spread over the sessions, or 0 while they are gathered on
    // one (ShardAssignment.SpreadAt). A new leader starts gathered and spreads again if a session is behind.
    private double _spreadAt;

    public SequencerLoop(int id, WriterDataSource dataSource, DatabaseState database, SequencerOptions options,
        IngestMetrics metrics, CommittedEventPublisher publisher, DuplicateScreen screen, ILogger logger, Action<int> assignmentChanged)
    {
        _id = id;
        _dataSource = dataSource;
        _database = database;
        _options = options;
        _metrics = metrics;
        _publisher = publisher;
        _screen = screen;
        _logger = logger;
        _assignmentChanged = assignmentChanged;
        _limit = Math.Max(1, options.MaxBatchRecords);
        _historyLimit = HistorySlice;
    }

    /// <summary>History records a history statement takes at most (<see cref="SequencerOptions.HistoryRecordsPerRound"/>).</summary>
    private int HistorySlice => Math.Max(1, _options.HistoryRecordsPerRound);

    /// <summary>This session's number within its instance (0 to <see cref="SequencerOptions.Loops"/> − 1).</summary>
    public int Id => _id;

    /// <summary>Shards this session holds right now (a gauge).</summary>
    public int OwnedShards => Volatile.Read(ref _owned).Length;

    /// <summary>The shards this session holds right now, as bits of a mask (<see cref="AccountShard.MaskOf"/>).</summary>
    public ulong OwnedMask => Volatile.Read(ref _ownedMask);

    /// <summary>Inbox records this session has taken (and deleted) so far.</summary>
    public long RecordsSequenced => Interlocked.Read(ref _recordsSequenced);

    /// <summary>
    /// Records may be waiting: run a round soon; with <paramref name="history"/>, records of a backfill among them, so
    /// the round runs a history statement too. Never blocks; wake-ups while one is pending coalesce.
    /// </summary>
    public void Wake(bool history = false)
    {
        if (history)
        {
            _backfillYield.Appended(Stopwatch.GetTimestamp());
            Volatile.Write(ref _historyWoken, 1);
        }

        _wakeups.Writer.TryWrite(true);
    }

    /// <summary>
    /// The leader rewrote the assignment, or a session gave shards up (or left): rebalance before the next round, so
    /// that a moved shard waits for its new owner for milliseconds, not for up to
    /// <see cref="SequencerOptions.RebalanceMilliseconds"/>. Such a rebalance follows the assignment; as the leader it
    /// only places shards whose owner has left, and leaves balancing by load to the regular rebalance (so that one move
    /// can never set off another).
    /// </summary>
    public void RequestRebalance()
    {
        Volatile.Write(ref _rebalanceRequested, 1);
        _wakeups.Writer.TryWrite(true);
    }

    /// <summary>
    /// Runs until <paramref name="stopping"/> is cancelled, then runs rounds until its shards are drained (or the
    /// database refuses), so that what this instance acknowledged before a graceful stop is visible when it exits.
    /// </summary>
    public async Task RunAsync(CancellationToken stopping)
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
                    bool requested = Interlocked.Exchange(ref _rebalanceRequested, 0) != 0;
                    bool due = Stopwatch.GetTimestamp() >= _nextRebalance;
                    if (due || requested)
                    {
                        await RebalanceAsync(regular: due);
                    }

                    if (_owned.Length > 0)
                    {
                        full = await RoundAsync(history: false);
                        if (stopRequested || IsHistoryDue())
                        {
                            full |= await RoundAsync(history: true);
                        }
                    }
                }
            }
            catch (PostgresException e) when (SqlStates.IsDataError(e))
            {
                await IsolateRefusedAsync(e, _roundIsHistory);
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
                // Drained: give the shards up now, while the other sessions can still be told (Redis is still up).
                await ResetAsync();
                return;
            }

            if (!full && !stopping.IsCancellationRequested)
            {
                await WaitForWorkAsync(stopping);
            }
        }
    }

    /// <summary>
    /// Whether this cycle also runs a history statement: a local writer appended history since the last one, the last one
    /// took a full slice (more is waiting), or <see cref="SequencerOptions.PollMilliseconds"/> have passed (history
    /// appended by another instance, or a wake-up missed); and this instance is not in the middle of acknowledging a
    /// backfill at full speed (<see cref="BackfillYield"/>). A cycle without history runs the live statement alone.
    /// </summary>
    private bool IsHistoryDue()
    {
        long now = Stopwatch.GetTimestamp();
        if (!(Interlocked.Exchange(ref _historyWoken, 0) != 0 || _historyFull || now >= _nextHistoryCheck))
        {
            return false;
        }

        if (_backfillYield.ShouldWait(now))
        {
            // Due as soon as the burst is over.
            _historyFull = true;
            return false;
        }

        return true;
    }

    /// <summary>
    /// One statement, in its own transaction: takes up to <see cref="_limit"/> live records, or for a
    /// <paramref name="history"/> round up to <see cref="_historyLimit"/> records of the backfill, projects them, and
    /// publishes the events it assigned. Live and history records never share a statement, so the live events of a
    /// cycle are committed and published before its history slice starts: a live record waits for at most the slice in
    /// progress, never for a slice of its own round. Returns true when it took a full batch (more are probably waiting).
    /// </summary>
    private async Task<bool> RoundAsync(bool history)
    {
        _roundIsHistory = history;
        long started = Stopwatch.GetTimestamp();
        if (!history)
        {
            _lastRoundStarted = started;
        }

        bool plain = !history && !_generalNext;
        _publisher.Begin();
        // A plain round whose events nobody can receive leaves their items out (DrainPlainEventsOnly).
        bool withItems = !plain || _publisher.WantsItems;
        NpgsqlCommand statement = !plain ? _drain! : withItems ? _drainPlain! : _drainPlainEventsOnly!;
        ((NpgsqlParameter<int[]>)statement.Parameters[0]).TypedValue = _owned;
        ((NpgsqlParameter<int>)statement.Parameters[1]).TypedValue = history ? 0 : _limit;
        if (!plain)
        {
            ((NpgsqlParameter<int>)statement.Parameters[2]).TypedValue = history ? _historyLimit : 0;
        }

        long taken = 0;
        int events = 0;
        long oldestMicroseconds = 0;
        long identified = 0;
        bool blocked = false;
        var summary = new BatchSummary();
        await using (NpgsqlDataReader reader = await statement.ExecuteReaderAsync())
        {
            // Every row: taken, oldest_us, identified, then the event (null in a round without events) with its item;
            // the plain statement's rows go on with whether a record for the general statement is waiting; all end with
            // the event's shard.
            int shardAt = reader.FieldCount - 1;
            while (await reader.ReadAsync())
            {
                taken = reader.GetInt64(0);
                oldestMicroseconds = reader.GetInt64(1);
                identified = reader.GetInt64(2);
                blocked = plain && reader.GetBoolean(shardAt - 1);
                if (reader.IsDBNull(3))
                {
                    continue;
                }

                _shardLoad.Count(reader.GetInt32(shardAt));
                var kind = (EventKind)reader.GetInt16(5);
                if (withItems)
                {
                    _publisher.Add(reader.GetString(3), reader.GetInt64(4), kind, reader, EventLayout);
                }

                summary.Add(kind);
                events++;
            }

            // Reading to the end consumes ReadyForQuery: only then is the statement's implicit transaction committed.
            await reader.NextResultAsync();
        }

        if (history)
        {
            _nextHistoryCheck = Stopwatch.GetTimestamp() + (_options.PollMilliseconds * Stopwatch.Frequency / 1000);
            _historyFull = taken >= _historyLimit;
        }
        else
        {
            _generalNext = blocked;
        }

        if (taken == 0)
        {
            _metrics.SequencerFoundNothing();
            // A plain round that stopped at once before a record for the general statement: run that one now.
            return blocked;
        }

        Interlocked.Add(ref _recordsSequenced, taken);
        if (!history)
        {
            _shardLoad.Round((int)taken);
        }

        // Messages and statuses taken that made no event were copies of something already stored (or repeated here).
        int duplicates = (int)(identified - summary.MessagesCreated - summary.StatusEvents);
        _metrics.DuplicatesScreened(0, duplicates);
        _screen.DuplicatesBehindScreen(duplicates);
        _metrics.SequencerRound((int)taken, summary, Stopwatch.GetElapsedTime(started), TimeSpan.FromMicroseconds(oldestMicroseconds), history);
        await _publisher.PublishAsync(events > 0);
        // Isolating refused data shrank the batch; grow it back once rounds succeed again.
        if (history)
        {
            _historyLimit = Math.Min(HistorySlice, _historyLimit * 2);
            return _historyFull;
        }

        bool full = taken >= _limit || blocked;
        _limit = Math.Min(Math.Max(1, _options.MaxBatchRecords), _limit * 2);
        return full;
    }

    /// <summary>
    /// PostgreSQL refused something in the batch (the statement rolled back). Halve the batch until a single record
    /// fails on its own, then move that record aside, so that its neighbours are sequenced. Live and history batches
    /// are isolated apart: the refused record is the oldest of the kind the failing statement took.
    /// </summary>
    private async Task IsolateRefusedAsync(PostgresException refusal, bool history)
    {
        int limit = history ? _historyLimit : _limit;
        if (limit > 1)
        {
            SetLimit(history, limit / 2);
            Log.Isolating(_logger, _id, refusal.SqlState, limit / 2);
            return;
        }

        try
        {
            await using NpgsqlCommand command = new(SequencerSql.DeadLetterOldest, _connection);
            command.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = _owned });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = refusal.SqlState });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = refusal.MessageText });
            command.Parameters.Add(new NpgsqlParameter<bool> { TypedValue = history });
            object? account = await command.ExecuteScalarAsync();
            Interlocked.Increment(ref _recordsSequenced);
            Log.DeadLettered(_logger, account as string, refusal.SqlState, refusal.MessageText);
            _metrics.DeadLettered(DeadLetterStage.Sequencer);
            SetLimit(history, history ? HistorySlice : Math.Max(1, _options.MaxBatchRecords));
        }
        catch (Exception e)
        {
            // Even the dead-letter insert failed: try again after a pause rather than spin on the same record.
            Log.DeadLetterFailed(_logger, _id, e);
            await Task.Delay(TimeSpan.FromSeconds(1));
        }
    }

    private void SetLimit(bool history, int limit)
    {
        if (history)
        {
            _historyLimit = limit;
        }
        else
        {
            _limit = limit;
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

            var drain = new NpgsqlCommand(SequencerSql.Drain, connection);
            drain.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = [] });
            drain.Parameters.Add(new NpgsqlParameter<int> { TypedValue = _limit });
            drain.Parameters.Add(new NpgsqlParameter<int> { TypedValue = _historyLimit });
            await drain.PrepareAsync();
            var drainPlain = new NpgsqlCommand(SequencerSql.DrainPlain, connection);
            drainPlain.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = [] });
            drainPlain.Parameters.Add(new NpgsqlParameter<int> { TypedValue = _limit });
            await drainPlain.PrepareAsync();
            var drainPlainEventsOnly = new NpgsqlCommand(SequencerSql.DrainPlainEventsOnly, connection);
            drainPlainEventsOnly.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = [] });
            drainPlainEventsOnly.Parameters.Add(new NpgsqlParameter<int> { TypedValue = _limit });
            await drainPlainEventsOnly.PrepareAsync();
            _connection = connection;
            _drain = drain;
            _drainPlain = drainPlain;
            _drainPlainEventsOnly = drainPlainEventsOnly;
            _generalNext = false;
            _nextRebalance = 0;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Reports the load of the shards this session holds, reads the assignment (and, as the leader, rewrites it first:
    /// <see cref="ShardAssignment"/>), then takes the shards assigned to this session and gives up the others (between
    /// rounds only). A rebalance that is not <paramref name="regular"/> (<see cref="RequestRebalance"/>) balances nothing
    /// by load and keeps the regular schedule. A change to the assignment and shards given up are announced to the other
    /// sessions, here and on other instances, which follow at once.
    /// </summary>
    private async Task RebalanceAsync(bool regular)
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

        int[] owners = new int[SequencerSql.ShardCount];
        double[] rates = new double[SequencerSql.ShardCount];
        double[] roundRecords = new double[SequencerSql.ShardCount];
        Array.Fill(owners, -1);
        int[] held = _owned;
        float[] heldRates = _shardLoad.Rates(held);
        await using (NpgsqlCommand report = new(SequencerSql.ReportAndReadAssignment, _connection))
        {
            report.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = held });
            report.Parameters.Add(new NpgsqlParameter<float[]> { TypedValue = heldRates });
            report.Parameters.Add(new NpgsqlParameter<int> { TypedValue = _memberSlot });
            report.Parameters.Add(new NpgsqlParameter<float> { TypedValue = (float)_shardLoad.RecordsPerRound });
            await using NpgsqlDataReader reader = await report.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                int shard = reader.GetInt32(0);
                if ((uint)shard < (uint)owners.Length)
                {
                    owners[shard] = reader.GetInt32(1);
                    rates[shard] = reader.GetFloat(2);
                    roundRecords[shard] = reader.GetFloat(3);
                }
            }
        }

        // The statement's snapshot predates its own report: this session's figures as it just reported them.
        for (int i = 0; i < held.Length; i++)
        {
            rates[held[i]] = heldRates[i];
            roundRecords[held[i]] = _shardLoad.RecordsPerRound;
        }

        // The leader (the lowest live member slot) decides for everyone; the others follow what it wrote.
        int moved = 0;
        if (_members.Count > 0 && _members[0] == _memberSlot)
        {
            if (regular)
            {
                bool sessionBehind = false;
                for (int shard = 0; shard < owners.Length; shard++)
                {
                    sessionBehind |= _members.Contains(owners[shard]) && roundRecords[shard] >= _options.SplitAboveRecordsPerRound;
                }

                _spreadAt = ShardAssignment.SpreadAt(sessionBehind, rates.Sum(), _spreadAt);
                moved = ShardAssignment.Balance(_members, owners, rates, spread: _spreadAt > 0);
            }
            else
            {
                moved = ShardAssignment.PlaceOrphans(_members, owners, rates);
            }
        }
        else
        {
            _spreadAt = 0;
        }

        if (moved > 0)
        {
            _metrics.ShardsMoved(moved);
            await using NpgsqlCommand write = new(SequencerSql.WriteAssignment, _connection);
            write.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = owners });
            await write.ExecuteNonQueryAsync();
        }

        _assigned.Clear();
        for (int shard = 0; shard < owners.Length; shard++)
        {
            if (owners[shard] == _memberSlot && _memberSlot >= 0)
            {
                _assigned.Add(shard);
            }
        }

        List<int> owned = [.. _owned];
        int[] release = [.. _owned.Where(s => !_assigned.Contains(s))];
        int[] acquire = [.. _assigned.Where(s => !_owned.Contains(s))];
        if (release.Length > 0)
        {
            // Out of the mask before the locks go: from now on writers wake these shards' next owner, wherever it is
            // (Sequencer.Wake), rather than taking them for this session's.
            owned.RemoveAll(release.Contains);
            SetOwned([.. owned]);
            await using NpgsqlCommand command = new(SequencerSql.Release, _connection);
            command.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = release });
            await command.ExecuteScalarAsync();
        }

        if (acquire.Length > 0)
        {
            await using NpgsqlCommand command = new(SequencerSql.Acquire, _connection);
            command.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = acquire });
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                int shard = reader.GetInt32(0);
                owned.Add(shard);
                _shardLoad.Seed(shard, rates[shard]);
            }
        }

        owned.Sort();
        SetOwned([.. owned]);
        // Shards still held by a session that is leaving are retried sooner than the regular interval (and at once when
        // it announces that it gave them up).
        int interval = _owned.Length < _assigned.Count ? Math.Min(250, _options.RebalanceMilliseconds) : _options.RebalanceMilliseconds;
        long next = Stopwatch.GetTimestamp() + (interval * Stopwatch.Frequency / 1000);
        _nextRebalance = regular ? next : Math.Min(_nextRebalance, next);
        if (release.Length > 0 || acquire.Length > 0)
        {
            Log.Rebalanced(_logger, _id, _members.Count, _owned.Length);
        }

        if (moved > 0 || release.Length > 0)
        {
            // Committed (each statement above is its own transaction): the other sessions can follow now.
            _assignmentChanged(_id);
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

    private void SetOwned(int[] owned)
    {
        ulong mask = 0;
        foreach (int shard in owned)
        {
            mask |= 1UL << shard;
        }

        Volatile.Write(ref _owned, owned);
        Volatile.Write(ref _ownedMask, mask);
    }

    private async ValueTask ResetAsync()
    {
        // A session that leaves gives its shards (and, as the leader, the lead) to the others at once.
        bool leaving = _owned.Length > 0 || _memberSlot >= 0;
        SetOwned([]);
        _memberSlot = -1;
        if (_drain is not null)
        {
            await _drain.DisposeAsync();
            _drain = null;
        }

        if (_drainPlain is not null)
        {
            await _drainPlain.DisposeAsync();
            _drainPlain = null;
        }

        if (_drainPlainEventsOnly is not null)
        {
            await _drainPlainEventsOnly.DisposeAsync();
            _drainPlainEventsOnly = null;
        }

        if (_connection is not null)
        {
            await EndSessionAsync(_connection);
            _connection = null;
        }

        if (leaving)
        {
            _assignmentChanged(_id);
        }
    }

    /// <summary>
    /// Ends the session's hold on its shards and member slot. Disposing a connection returns it to the pool, where its
    /// PostgreSQL session, and with it every advisory lock it holds, lives on until the pool reuses or prunes it: so the
    /// locks are released first, and if that fails on a connection that is not broken (a timeout), the connection is
    /// closed instead of pooled. A broken connection is discarded by Npgsql, and PostgreSQL has released its locks.
    /// </summary>
    private static async Task EndSessionAsync(NpgsqlConnection connection)
    {
        if (connection.State == System.Data.ConnectionState.Open)
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await using var unlock = new NpgsqlCommand("SELECT pg_advisory_unlock_all()", connection);
                await unlock.ExecuteNonQueryAsync(timeout.Token);
            }
            catch (Exception e) when (e is NpgsqlException or OperationCanceledException or TimeoutException)
            {
                NpgsqlConnection.ClearPool(connection);
            }
        }

        await connection.DisposeAsync();
    }

    public async ValueTask DisposeAsync() => await ResetAsync();

    private static partial class Log
    {
        [LoggerMessage(EventId = 700, EventName = "SequencerRoundFailed", Level = LogLevel.Warning,
            Message = "Sequencer {Loop} lost its session; its shards are released and it reconnects. Acknowledged records wait in the inbox.")]
        public static partial void RoundFailed(ILogger logger, int loop, Exception exception);

        [LoggerMessage(EventId = 701, EventName = "SequencerIsolating", Level = LogLevel.Debug,
            Message = "Sequencer {Loop}: PostgreSQL refused a batch ({SqlState}); retrying with at most {Limit} record(s) to find the refused one.")]
        public static partial void Isolating(ILogger logger, int loop, string sqlState, int limit);

        [LoggerMessage(EventId = 702, EventName = "RecordDeadLettered", Level = LogLevel.Warning,
            Message = "A record of account {Account} was refused by PostgreSQL ({SqlState}: {Reason}) and moved to dead_letters; the webhook was already acknowledged.")]
        public static partial void DeadLettered(ILogger logger, string? account, string sqlState, string reason);

        [LoggerMessage(EventId = 703, EventName = "DeadLetterFailed", Level = LogLevel.Error,
            Message = "Sequencer {Loop} could not move a refused record to dead_letters; retrying.")]
        public static partial void DeadLetterFailed(ILogger logger, int loop, Exception exception);

        [LoggerMessage(EventId = 704, EventName = "SequencerRebalanced", Level = LogLevel.Information,
            Message = "Sequencer {Loop}: {Members} sequencer session(s) live; this one now owns {Shards} shard(s).")]
        public static partial void Rebalanced(ILogger logger, int loop, int members, int shards);
    }
}
