using System.Diagnostics;
using Memo.Ingest.Events;
using Memo.Ingest.Ingest;
using Memo.Ingest.Observability;
using Memo.Ingest.Redis;
using Memo.Ingest.Streams;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Memo.Ingest.Sequencing;

/// <summary>
/// Runs one sequencer statement (<see cref="SequencerSql.Drain"/> or <see cref="SequencerSql.HistoryDrain"/>, its
/// parameters set by the lane), reads the events it assigned, and once it has committed announces them and records the
/// round. One per lane: its publisher's buffers are reused round after round.
///
/// Data that PostgreSQL refuses is isolated by halving the lane's batch until a single record fails alone
/// (<see cref="IsolateRefusedAsync"/>); that record goes to <c>dead_letters</c> with the reason, and the lane goes on.
/// A refused record can therefore delay its shards by a few rounds, never stop them.
/// </summary>
internal sealed partial class SequencerRound(int loop, int maxRecords, IngestMetrics metrics, CommittedEventPublisher publisher,
    DuplicateScreen screen, ILogger logger)
{
    /// <summary>Where the statement's rows carry each event's item columns.</summary>
    private static readonly StreamEventEncoder.Layout EventLayout = new(MessageAt: 6, ConversationAt: 24, ContactAt: 33, ContactBookAt: 36, HistoryAt: 43);

    /// <summary>The most records the lane's next statement takes: <c>maxRecords</c>, or less while a refused record is
    /// being isolated.</summary>
    public int Limit { get; private set; } = Math.Max(1, maxRecords);

    /// <summary>Runs <paramref name="statement"/> in its own implicit transaction; returns the records it took.</summary>
    public async Task<long> RunAsync(NpgsqlCommand statement, bool history)
    {
        long started = Stopwatch.GetTimestamp();
        publisher.Begin();
        long taken = 0;
        long oldestMicroseconds = 0;
        long identified = 0;
        var summary = new BatchSummary();
        await using (NpgsqlDataReader reader = await statement.ExecuteReaderAsync())
        {
            // Every row: taken, oldest_us, identified, then the event (null in a round without events) with its item.
            while (await reader.ReadAsync())
            {
                taken = reader.GetInt64(0);
                oldestMicroseconds = reader.GetInt64(1);
                identified = reader.GetInt64(2);
                if (reader.IsDBNull(3))
                {
                    continue;
                }

                var kind = (EventKind)reader.GetInt16(5);
                publisher.Add(reader.GetString(3), reader.GetInt64(4), kind, reader, EventLayout);
                summary.Add(kind);
            }

            // Reading to the end consumes ReadyForQuery: only then is the statement's implicit transaction committed.
            await reader.NextResultAsync();
        }

        if (taken == 0)
        {
            return 0;
        }

        // Messages and statuses taken that made no event were copies of something already stored (or repeated here).
        int duplicates = (int)(identified - summary.MessagesCreated - summary.StatusEvents);
        metrics.DuplicatesScreened(0, duplicates);
        screen.DuplicatesBehindScreen(duplicates);
        metrics.SequencerRound((int)taken, summary, Stopwatch.GetElapsedTime(started), TimeSpan.FromMicroseconds(oldestMicroseconds), history);
        await publisher.PublishAsync();
        // Isolating refused data shrank the batch; grow it back once rounds succeed again.
        Limit = Math.Min(Math.Max(1, maxRecords), Limit * 2);
        return taken;
    }

    /// <summary>
    /// PostgreSQL refused something in the lane's statement (it rolled back). Halves the batch until a single record
    /// fails on its own, then moves that record aside, so that its neighbours are sequenced. The refused record is the
    /// oldest of the lane's kind in the <paramref name="shards"/> the failing statement took from.
    /// </summary>
    public async Task IsolateRefusedAsync(NpgsqlConnection connection, int[] shards, PostgresException refusal, bool history)
    {
        if (Limit > 1)
        {
            Limit /= 2;
            Log.Isolating(logger, loop, refusal.SqlState, Limit);
            return;
        }

        try
        {
            string? account = await DeadLetterOldestAsync(connection, shards, refusal, history);
            Log.DeadLettered(logger, account, refusal.SqlState, refusal.MessageText);
            metrics.DeadLettered(DeadLetterStage.Sequencer);
            Limit = Math.Max(1, maxRecords);
        }
        catch (Exception e)
        {
            // Even the dead-letter insert failed: try again after a pause rather than spin on the same record.
            Log.DeadLetterFailed(logger, loop, e);
            await Task.Delay(TimeSpan.FromSeconds(1));
        }
    }

    /// <summary>
    /// Moves the single oldest record of <paramref name="shards"/> (of the history lane, or of the live lane) to
    /// <c>dead_letters</c> with the reason PostgreSQL gave for refusing it alone; returns its account.
    /// </summary>
    private static async Task<string?> DeadLetterOldestAsync(NpgsqlConnection connection, int[] shards, PostgresException refusal, bool history)
    {
        await using NpgsqlCommand command = new(SequencerSql.DeadLetterOldest, connection);
        command.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = shards });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = refusal.SqlState });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = refusal.MessageText });
        command.Parameters.Add(new NpgsqlParameter<bool> { TypedValue = history });
        return await command.ExecuteScalarAsync() as string;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 701, EventName = "SequencerIsolating", Level = LogLevel.Debug,
            Message = "Sequencer {Loop}: PostgreSQL refused a batch ({SqlState}); retrying with at most {Limit} record(s) to find the refused one.")]
        public static partial void Isolating(ILogger logger, int loop, string sqlState, int limit);

        [LoggerMessage(EventId = 702, EventName = "RecordDeadLettered", Level = LogLevel.Warning,
            Message = "A record of account {Account} was refused by PostgreSQL ({SqlState}: {Reason}) and moved to dead_letters; the webhook was already acknowledged.")]
        public static partial void DeadLettered(ILogger logger, string? account, string sqlState, string reason);

        [LoggerMessage(EventId = 703, EventName = "DeadLetterFailed", Level = LogLevel.Error,
            Message = "Sequencer {Loop} could not move a refused record to dead_letters; retrying.")]
        public static partial void DeadLetterFailed(ILogger logger, int loop, Exception exception);
    }
}
