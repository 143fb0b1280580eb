using System.Diagnostics;
using System.Threading.Channels;
using Memo.Ingest.Configuration;
using Memo.Ingest.Storage;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Memo.Ingest.Sequencing;

/// <summary>
/// A sequencer session's history lane: sequences the records of history backfills (coexistence numbers) in slices of
/// <see cref="SequencerOptions.HistoryRecordsPerRound"/>, on a PostgreSQL connection of its own, beside the live lane
/// (<see cref="SequencerLoop"/>) that holds the shards. Before, one connection ran the live statement and then a
/// history slice, so every live record that arrived during a slice waited for it to commit; now live statements go
/// on while a slice runs, leaving out only the one shard the slice holds (<see cref="ShardTurns"/>).
///
/// Each slice takes the shard of the oldest history record waiting, so several backfills are served oldest first.
/// It holds no shard lock of its own: its statement checks that the live session still holds the shard
/// (<see cref="SequencerSql.HistoryDrain"/>), and takes nothing from a shard the session has lost.
/// </summary>
internal sealed partial class HistoryLane : IAsyncDisposable
{
    private readonly int _id;
    private readonly WriterDataSource _dataSource;
    private readonly DatabaseState _database;
    private readonly SequencerOptions _options;
    private readonly SequencerRound _round;
    private readonly ShardTurns _turns;
    private readonly Action _wakeLive;
    private readonly ILogger _logger;
    private readonly BackfillYield _backfillYield = BackfillYield.Default();
    private readonly Channel<bool> _wakeups = Channel.CreateBounded<bool>(new BoundedChannelOptions(1)
    {
        FullMode = BoundedChannelFullMode.DropWrite,
        SingleReader = true,
    });

    private NpgsqlConnection? _connection;
    private NpgsqlCommand? _oldestShard;
    private NpgsqlCommand? _drain;
    private long _recordsSequenced;

    public HistoryLane(int id, WriterDataSource dataSource, DatabaseState database, SequencerOptions options, SequencerRound round,
        ShardTurns turns, Action wakeLive, ILogger logger)
    {
        _id = id;
        _dataSource = dataSource;
        _database = database;
        _options = options;
        _round = round;
        _turns = turns;
        _wakeLive = wakeLive;
        _logger = logger;
    }

    /// <summary>Inbox records this lane has taken (and deleted) so far.</summary>
    public long RecordsSequenced => Interlocked.Read(ref _recordsSequenced);

    /// <summary>A local writer appended history records: a slice is due soon. Never blocks.</summary>
    public void Wake()
    {
        _backfillYield.Appended(Stopwatch.GetTimestamp());
        _wakeups.Writer.TryWrite(true);
    }

    /// <summary>
    /// Runs until <paramref name="stopping"/> is cancelled, then runs slices until no history record of the session's
    /// shards waits (or the session is gone), so that an acknowledged backfill is visible when the process exits.
    /// </summary>
    public async Task RunAsync(CancellationToken stopping)
    {
        bool moreWaiting = true;
        while (true)
        {
            bool stopRequested = stopping.IsCancellationRequested;
            // While this instance acknowledges a backfill at full speed, slices wait (BackfillYield); never when stopping.
            bool yielding = !stopRequested && _backfillYield.ShouldWait(Stopwatch.GetTimestamp());
            int[] shard = [];
            try
            {
                if (_database.SchemaReady && _turns.LivePid != 0 && _turns.Owned.Length > 0 && !yielding)
                {
                    await EnsureConnectionAsync();
                    shard = await OldestShardAsync();
                    moreWaiting = shard.Length > 0 && await SliceAsync(shard);
                    if (stopRequested && shard.Length == 0)
                    {
                        return;
                    }
                }
                else if (stopRequested)
                {
                    return;
                }
            }
            catch (PostgresException e) when (SqlStates.IsDataError(e))
            {
                await _round.IsolateRefusedAsync(_connection!, shard, e, history: true);
                continue;
            }
            catch (PostgresException e) when (SqlStates.IsRetryable(e))
            {
                continue;
            }
            catch (Exception e)
            {
                Log.SliceFailed(_logger, _id, e);
                await ResetAsync();
                if (stopRequested)
                {
                    return;
                }

                await PauseAsync(TimeSpan.FromMilliseconds(Math.Max(100, _options.PollMilliseconds)), stopping);
                continue;
            }

            if (stopRequested || moreWaiting && !yielding)
            {
                continue;
            }

            // A local append wakes the lane at once; history appended by another instance waits at most the poll
            // interval; a yield is looked at again within 50 ms.
            await WaitForWakeupAsync(yielding ? 50 : _options.PollMilliseconds, stopping);
        }
    }

    /// <summary>
    /// One slice of <paramref name="shard"/>: claims it from the live lane, runs the history statement, and gives it
    /// back once the events are announced. Returns whether more history may be waiting.
    /// </summary>
    private async Task<bool> SliceAsync(int[] shard)
    {
        if (!await _turns.ClaimAsync(shard[0]))
        {
            return false;
        }

        try
        {
            int limit = _round.Limit;
            ((NpgsqlParameter<int[]>)_drain!.Parameters[0]).TypedValue = shard;
            ((NpgsqlParameter<int>)_drain.Parameters[2]).TypedValue = limit;
            ((NpgsqlParameter<int>)_drain.Parameters[3]).TypedValue = _turns.LivePid;
            long taken = await _round.RunAsync(_drain, history: true);
            Interlocked.Add(ref _recordsSequenced, taken);
            return taken >= limit;
        }
        finally
        {
            _turns.Release();
            // Live records of the shard that arrived during the slice were left out of the live statements meanwhile.
            _wakeLive();
        }
    }

    private async Task<int[]> OldestShardAsync()
    {
        ((NpgsqlParameter<int[]>)_oldestShard!.Parameters[0]).TypedValue = _turns.Owned;
        return await _oldestShard.ExecuteScalarAsync() is int shard ? [shard] : [];
    }

    private async Task WaitForWakeupAsync(int milliseconds, CancellationToken stopping)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        timeout.CancelAfter(milliseconds);
        try
        {
            await _wakeups.Reader.WaitToReadAsync(timeout.Token);
            _wakeups.Reader.TryRead(out _);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task EnsureConnectionAsync()
    {
        if (_connection is { State: System.Data.ConnectionState.Open })
        {
            return;
        }

        await ResetAsync();
        NpgsqlConnection connection = await _dataSource.OpenConnectionAsync();
        try
        {
            var oldestShard = new NpgsqlCommand(SequencerSql.OldestHistoryShard, connection);
            oldestShard.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = [] });
            await oldestShard.PrepareAsync();
            var drain = new NpgsqlCommand(SequencerSql.HistoryDrain, connection);
            drain.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = [] });
            drain.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 0 });
            drain.Parameters.Add(new NpgsqlParameter<int> { TypedValue = _round.Limit });
            drain.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 0 });
            await drain.PrepareAsync();
            _connection = connection;
            _oldestShard = oldestShard;
            _drain = drain;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
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
        if (_drain is not null)
        {
            await _drain.DisposeAsync();
            _drain = null;
        }

        if (_oldestShard is not null)
        {
            await _oldestShard.DisposeAsync();
            _oldestShard = null;
        }

        if (_connection is not null)
        {
            await _connection.DisposeAsync();
            _connection = null;
        }
    }

    public async ValueTask DisposeAsync() => await ResetAsync();

    private static partial class Log
    {
        [LoggerMessage(EventId = 706, EventName = "HistorySliceFailed", Level = LogLevel.Warning,
            Message = "Sequencer {Loop}: its history lane lost its connection and reconnects. Acknowledged history records wait in the inbox.")]
        public static partial void SliceFailed(ILogger logger, int loop, Exception exception);
    }
}
