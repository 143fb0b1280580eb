using System.Diagnostics;
using System.Threading.Channels;
using Memo.Ingest.Configuration;
using Memo.Ingest.Observability;
using Memo.Ingest.Storage;
using Memo.Ingest.Webhooks.Parsing;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Memo.Ingest.Ingest;

/// <summary>
/// One group-commit writer: takes as many queued webhooks as fit a batch, writes them in one transaction on its own
/// connection, and only then completes each webhook (the request answers 200). Every webhook taken from the channel
/// is completed exactly once, whatever happens: that is what lets the endpoint return its pooled buffers safely.
/// </summary>
internal sealed partial class IngestWriter : IAsyncDisposable
{
    // PostgreSQL SQLSTATEs: a deadlock or serialization failure is retried; data exceptions (class 22) and constraint
    // violations (class 23) belong to some webhook in the batch, which is then found by writing them one by one.
    private const string DeadlockDetected = "40P01";
    private const string SerializationFailure = "40001";
    private const int MaxDeadlockRetries = 3;

    private readonly int _id;
    private readonly ChannelReader<ParsedWebhook> _queue;
    private readonly NpgsqlDataSource _dataSource;
    private readonly DatabaseState _database;
    private readonly IngestOptions _options;
    private readonly IngestMetrics _metrics;
    private readonly ILogger _logger;
    private readonly List<ParsedWebhook> _batch = [];
    private readonly List<ParsedWebhook> _single = [null!];
    private NpgsqlConnection? _connection;
    private NpgsqlBatch? _apply;
    private long _reconnectNotBefore;

    public IngestWriter(int id, ChannelReader<ParsedWebhook> queue, NpgsqlDataSource dataSource, DatabaseState database,
        IngestOptions options, IngestMetrics metrics, ILogger logger)
    {
        _id = id;
        _queue = queue;
        _dataSource = dataSource;
        _database = database;
        _options = options;
        _metrics = metrics;
        _logger = logger;
    }

    /// <summary>Runs until the channel is completed and drained (graceful shutdown waits for this).</summary>
    public async Task RunAsync()
    {
        var linger = TimeSpan.FromMilliseconds(_options.BatchLingerMilliseconds);
        while (await _queue.WaitToReadAsync())
        {
            int records = Drain(0);
            if (records == 0)
            {
                continue;
            }

            if (linger > TimeSpan.Zero && records < _options.MaxBatchRecords)
            {
                await Task.Delay(linger);
                Drain(records);
            }

            await WriteAsync(_batch);
            _batch.Clear();
        }
    }

    private int Drain(int records)
    {
        while (records < _options.MaxBatchRecords && _queue.TryRead(out ParsedWebhook? webhook))
        {
            _batch.Add(webhook);
            records += webhook.Count;
        }

        return records;
    }

    private async Task WriteAsync(List<ParsedWebhook> batch)
    {
        if (!_database.SchemaReady || Stopwatch.GetTimestamp() < _reconnectNotBefore)
        {
            Complete(batch, IngestOutcome.Unavailable);
            return;
        }

        IngestOutcome outcome = await TryCommitAsync(batch);
        if (outcome == IngestOutcome.RejectedByDatabase && batch.Count > 1)
        {
            // Some webhook's data was refused. Isolate it, so that one bad payload cannot fail the others.
            foreach (ParsedWebhook webhook in batch)
            {
                _single[0] = webhook;
                Complete(_single, await TryCommitAsync(_single));
            }

            _single[0] = null!;
            return;
        }

        Complete(batch, outcome);
    }

    private async Task<IngestOutcome> TryCommitAsync(List<ParsedWebhook> batch)
    {
        for (int attempt = 0; ; attempt++)
        {
            long started = Stopwatch.GetTimestamp();
            try
            {
                BatchSummary summary = await CommitAsync(batch);
                _metrics.BatchCommitted(batch.Count, summary, Stopwatch.GetElapsedTime(started));
                return IngestOutcome.Committed;
            }
            catch (PostgresException e) when (e.SqlState is DeadlockDetected or SerializationFailure && attempt < MaxDeadlockRetries)
            {
                Log.Retrying(_logger, _id, e.SqlState);
            }
            catch (PostgresException e) when (e.SqlState.StartsWith("22", StringComparison.Ordinal) || e.SqlState.StartsWith("23", StringComparison.Ordinal))
            {
                Log.DataRejected(_logger, _id, batch.Count, e.SqlState, e.MessageText);
                return IngestOutcome.RejectedByDatabase;
            }
            catch (Exception e)
            {
                // The transaction rolled back, or its COMMIT's fate is unknown: the webhooks are answered 503 and
                // Meta redelivers them; if the commit did happen, the redelivery is recognised as a duplicate.
                Log.WriteFailed(_logger, _id, batch.Count, e);
                _metrics.WriteFailed();
                await ResetConnectionAsync();
                _reconnectNotBefore = Stopwatch.GetTimestamp() + (_options.ReconnectBackoffMilliseconds * Stopwatch.Frequency / 1000);
                return IngestOutcome.Unavailable;
            }
        }
    }

    private async Task<BatchSummary> CommitAsync(List<ParsedWebhook> batch)
    {
        (NpgsqlConnection connection, NpgsqlBatch apply) = await EnsureConnectionAsync();
        await using NpgsqlTransaction transaction = await connection.BeginTransactionAsync();
        await using (NpgsqlBinaryImporter importer = await connection.BeginBinaryImportAsync(IngestSql.CopyStage))
        {
            int ord = 0;
            foreach (ParsedWebhook webhook in batch)
            {
                for (int i = 0; i < webhook.Count; i++)
                {
                    await StageRowWriter.WriteAsync(importer, webhook.Arena, webhook[i], ord++, CancellationToken.None);
                }
            }

            await importer.CompleteAsync();
        }

        var summary = new BatchSummary();
        await using (NpgsqlDataReader reader = await apply.ExecuteReaderAsync())
        {
            // Every statement but the last returns no rows; the last is SummarizeEvents.
            do
            {
                while (await reader.ReadAsync())
                {
                    summary.Add((EventKind)reader.GetInt16(0), reader.GetInt32(1));
                }
            }
            while (await reader.NextResultAsync());
        }

        await transaction.CommitAsync();
        return summary;
    }

    private async ValueTask<(NpgsqlConnection, NpgsqlBatch)> EnsureConnectionAsync()
    {
        if (_connection is { State: System.Data.ConnectionState.Open } && _apply is not null)
        {
            return (_connection, _apply);
        }

        await ResetConnectionAsync();
        NpgsqlConnection connection = await _dataSource.OpenConnectionAsync();
        try
        {
            await using (var create = new NpgsqlCommand(IngestSql.CreateStagingTables, connection))
            {
                await create.ExecuteNonQueryAsync();
            }

            var apply = new NpgsqlBatch(connection);
            foreach (string sql in IngestSql.Apply)
            {
                apply.BatchCommands.Add(new NpgsqlBatchCommand(sql));
            }

            await apply.PrepareAsync();
            _connection = connection;
            _apply = apply;
            return (connection, apply);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private async ValueTask ResetConnectionAsync()
    {
        if (_apply is not null)
        {
            await _apply.DisposeAsync();
            _apply = null;
        }

        if (_connection is not null)
        {
            // A connection that failed mid-protocol is never reused (Npgsql breaks it; disposing discards it).
            await _connection.DisposeAsync();
            _connection = null;
        }
    }

    private static void Complete(List<ParsedWebhook> batch, IngestOutcome outcome)
    {
        foreach (ParsedWebhook webhook in batch)
        {
            webhook.Complete(outcome);
        }
    }

    public ValueTask DisposeAsync() => ResetConnectionAsync();

    private static partial class Log
    {
        [LoggerMessage(EventId = 200, EventName = "WriteFailed", Level = LogLevel.Warning,
            Message = "Writer {Writer} could not commit a batch of {Webhooks} webhook(s); they are answered 503 and will be redelivered.")]
        public static partial void WriteFailed(ILogger logger, int writer, int webhooks, Exception exception);

        [LoggerMessage(EventId = 201, EventName = "DataRejected", Level = LogLevel.Debug,
            Message = "Writer {Writer}: PostgreSQL refused data in a batch of {Webhooks} webhook(s): {SqlState} {Reason}")]
        public static partial void DataRejected(ILogger logger, int writer, int webhooks, string sqlState, string reason);

        [LoggerMessage(EventId = 202, EventName = "RetryingBatch", Level = LogLevel.Information,
            Message = "Writer {Writer}: retrying a batch after {SqlState}.")]
        public static partial void Retrying(ILogger logger, int writer, string sqlState);
    }
}
