using System.Buffers;
using System.Diagnostics;
using System.Threading.Channels;
using Memo.Ingest.Configuration;
using Memo.Ingest.Events;
using Memo.Ingest.Observability;
using Memo.Ingest.Redis;
using Memo.Ingest.Storage;
using Memo.Ingest.Webhooks.Parsing;
using Memo.Redis;
using Memo.Redis.Protocol;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Memo.Ingest.Ingest;

/// <summary>
/// One group-commit writer: takes as many queued webhooks as fit a batch, asks Redis which of their records are
/// already stored (<see cref="DuplicateScreen"/>), writes the rest in one transaction on its own connection, and
/// only then completes each webhook (the request answers 200). After the commit it records the batch's ids in Redis
/// and publishes its events (<see cref="EventBus"/>). Every webhook taken from the channel is completed exactly once,
/// whatever happens: that is what lets the endpoint return its pooled buffers safely.
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
    private readonly DuplicateScreen _screen;
    private readonly EventBus _bus;
    private readonly GatewayRedis _redis;
    private readonly TimeSpan _redisWait;
    private readonly ILogger _logger;
    private readonly List<ParsedWebhook> _batch = [];
    private readonly List<ParsedWebhook> _single = [null!];

    // Reused per batch: the staged rows by ord, the events the apply SQL numbered, and the Redis commands and event
    // frame built from them.
    private readonly List<StagedPosition> _staged = [];
    private readonly List<EventRow> _events = [];
    private readonly RespCommandBuffer _redisCommands = new(4096);
    private readonly ArrayBufferWriter<byte> _frame = new(4096);
    private NpgsqlConnection? _connection;
    private NpgsqlBatch? _apply;
    private long _reconnectNotBefore;
    private bool _hadConnection;

    public IngestWriter(int id, ChannelReader<ParsedWebhook> queue, NpgsqlDataSource dataSource, DatabaseState database,
        IngestOptions options, IngestMetrics metrics, DuplicateScreen screen, EventBus bus, GatewayRedis redis, ILogger logger)
    {
        _screen = screen;
        _bus = bus;
        _redis = redis;
        _redisWait = TimeSpan.FromMilliseconds(redis.Settings.ScreenTimeoutMilliseconds);
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

        int screened = await _screen.ScreenAsync(batch, _redisCommands);
        IngestOutcome outcome = await TryCommitAsync(batch, screened);
        if (outcome == IngestOutcome.RejectedByDatabase && batch.Count > 1)
        {
            // Some webhook's data was refused. Isolate it, so that one bad payload cannot fail the others.
            foreach (ParsedWebhook webhook in batch)
            {
                _single[0] = webhook;
                await FinishAsync(_single, await TryCommitAsync(_single, screened: 0));
            }

            _single[0] = null!;
            return;
        }

        await FinishAsync(batch, outcome);
    }

    /// <summary>
    /// Answers the webhooks. For a committed batch, the Redis commands (remember the ids, publish the events) are
    /// built from the webhooks' buffers and handed to the connection first, because completing a webhook returns its
    /// buffers to the pool; the replies are awaited afterwards, so Redis never delays a 200.
    /// </summary>
    private async Task FinishAsync(List<ParsedWebhook> batch, IngestOutcome outcome)
    {
        Task<RedisReply[]>? redisCall = null;
        if (outcome == IngestOutcome.Committed)
        {
            try
            {
                redisCall = PublishCommitted(batch);
            }
            catch (Exception e)
            {
                // Nothing after the commit may keep a webhook from its answer: the data is stored, and listeners
                // catch up from the event log.
                Log.PublishFailed(_logger, _id, e);
                _metrics.RedisFailed(RedisOperation.RecordAndPublish);
            }
        }

        Complete(batch, outcome);
        if (redisCall is not null)
        {
            try
            {
                await redisCall.WaitAsync(_redisWait);
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                // Not remembered: the next retry of these ids is caught by PostgreSQL instead. Not published: other
                // instances catch up from the event log when they see the next seq.
                _metrics.RedisFailed(RedisOperation.RecordAndPublish);
            }
        }
    }

    private Task<RedisReply[]>? PublishCommitted(List<ParsedWebhook> committed)
    {
        if (_events.Count > 0)
        {
            WriteEventFrame();
            _bus.DeliverLocal(_frame.WrittenSpan);
        }

        RedisConnection? redis = _redis.Commands;
        if (redis is null || !redis.IsConnected)
        {
            return null;
        }

        _redisCommands.Reset();
        _screen.AppendRemember(committed, _redisCommands);
        if (_events.Count > 0)
        {
            _redisCommands.Command(3).Argument("PUBLISH"u8).Argument(_bus.ChannelName).Argument(_frame.WrittenSpan);
        }

        return _redisCommands.Commands == 0 ? null : redis.ExecuteAsync(_redisCommands);
    }

    /// <summary>Encodes the batch's events from the staged UTF-8 (no strings): see <see cref="EventFrame"/>.</summary>
    private void WriteEventFrame()
    {
        _frame.ResetWrittenCount();
        EventFrame.WriteHeader(_frame, _bus.InstanceId, _events.Count);
        foreach (EventRow row in _events)
        {
            StagedPosition position = _staged[row.Ord];
            ref StagedRecord record = ref position.Record;
            Utf8Arena arena = position.Webhook.Arena;
            bool isMessageKey = row.Kind is EventKind.MessageCreated or EventKind.MessageStatus;
            bool isStatus = row.Kind == EventKind.MessageStatus;
            EventFrame.WriteEvent(_frame, arena[record.Account], row.Seq, row.Kind,
                arena[isMessageKey ? record.Id : record.WaId],
                isStatus ? arena[record.Type] : default, hasStatus: isStatus,
                isStatus ? record.Timestamp : 0);
        }
    }

    private async Task<IngestOutcome> TryCommitAsync(List<ParsedWebhook> batch, int screened)
    {
        StageablePositions(batch);
        _events.Clear();
        if (_staged.Count == 0)
        {
            // Every record was screened as already committed: there is nothing to write, and the retry is answered 200.
            _metrics.DuplicatesScreened(screened, 0);
            return IngestOutcome.Committed;
        }

        for (int attempt = 0; ; attempt++)
        {
            long started = Stopwatch.GetTimestamp();
            try
            {
                _events.Clear();
                BatchSummary summary = await CommitAsync();
                _metrics.BatchCommitted(batch.Count, summary, Stopwatch.GetElapsedTime(started));
                _metrics.DuplicatesScreened(screened, CountStagedMessagesAndStatuses() - summary.MessagesCreated - summary.StatusEvents);
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

    /// <summary>Numbers the records that will be written (those not screened): a record's ord is its index here.</summary>
    private void StageablePositions(List<ParsedWebhook> batch)
    {
        _staged.Clear();
        foreach (ParsedWebhook webhook in batch)
        {
            for (int i = 0; i < webhook.Count; i++)
            {
                if (!webhook[i].Screened)
                {
                    _staged.Add(new StagedPosition(webhook, i));
                }
            }
        }
    }

    private int CountStagedMessagesAndStatuses()
    {
        int count = 0;
        foreach (StagedPosition position in _staged)
        {
            count += position.Record.Kind is RecordKind.Message or RecordKind.Status ? 1 : 0;
        }

        return count;
    }

    private async Task<BatchSummary> CommitAsync()
    {
        (NpgsqlConnection connection, NpgsqlBatch apply) = await EnsureConnectionAsync();
        await using NpgsqlTransaction transaction = await connection.BeginTransactionAsync();
        await using (NpgsqlBinaryImporter importer = await connection.BeginBinaryImportAsync(IngestSql.CopyStage))
        {
            for (int ord = 0; ord < _staged.Count; ord++)
            {
                StagedPosition position = _staged[ord];
                await StageRowWriter.WriteAsync(importer, position.Webhook.Arena, position.Record, ord, CancellationToken.None);
            }

            await importer.CompleteAsync();
        }

        var summary = new BatchSummary();
        await using (NpgsqlDataReader reader = await apply.ExecuteReaderAsync())
        {
            // Every statement but the last returns no rows; the last is ListEvents.
            do
            {
                while (await reader.ReadAsync())
                {
                    var row = new EventRow(reader.GetInt32(0), reader.GetInt64(1), (EventKind)reader.GetInt16(2));
                    _events.Add(row);
                    summary.Add(row.Kind);
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
        if (_hadConnection)
        {
            _metrics.WriterReconnected();
        }

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
            _hadConnection = true;
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

    public async ValueTask DisposeAsync()
    {
        await ResetConnectionAsync();
        _redisCommands.Dispose();
    }

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

        [LoggerMessage(EventId = 203, EventName = "PublishFailed", Level = LogLevel.Error,
            Message = "Writer {Writer} committed a batch but could not record or publish it; other instances will catch up from the event log.")]
        public static partial void PublishFailed(ILogger logger, int writer, Exception exception);
    }
}
