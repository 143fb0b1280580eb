using System.Diagnostics;
using System.Threading.Channels;
using Memo.Ingest.Configuration;
using Memo.Ingest.Observability;
using Memo.Ingest.Redis;
using Memo.Ingest.Sequencing;
using Memo.Ingest.Storage;
using Memo.Ingest.Testing;
using Memo.Ingest.Webhooks.Parsing;
using StackExchange.Redis;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Memo.Ingest.Ingest;

/// <summary>
/// One group-commit writer of the acknowledgement path: takes as many queued webhooks as fit a batch, asks Redis which
/// of their records are already stored (<see cref="DuplicateScreen"/>), appends the rest to the inbox in one implicit
/// transaction on its own connection (<see cref="InboxAppender"/>), and only then completes each webhook (the request
/// answers 200). After the commit it records the batch's ids in Redis and wakes the sequencers. Every webhook taken
/// from the channel is completed exactly once, whatever happens: that is what lets the endpoint return its pooled
/// buffers safely, and what <see cref="IngestPipeline"/> relies on when it restarts a writer that failed.
/// </summary>
internal sealed partial class IngestWriter : IAsyncDisposable
{
    private readonly int _id;
    private readonly ChannelReader<ParsedWebhook> _queue;
    private readonly WriterDataSource _dataSource;
    private readonly DatabaseState _database;
    private readonly IngestOptions _options;
    private readonly IngestMetrics _metrics;
    private readonly DuplicateScreen _screen;
    private readonly RecentContactProfiles _contactProfiles;
    private readonly Sequencer _sequencer;
    private readonly InboxBacklog _backlog;
    private readonly GatewayRedis _redis;
    private readonly TimeSpan _redisWait;
    private readonly FaultInjector _faults;
    private readonly ILogger _logger;

    // The webhooks taken from the channel and not yet completed; reused per batch. If the writer fails, the pipeline
    // completes whatever is still here (FailInFlight).
    private readonly List<ParsedWebhook> _batch = [];
    private InboxAppender? _appender;
    private PostgresException? _refusal;
    private long _reconnectNotBefore;
    private bool _hadConnection;

    public IngestWriter(int id, ChannelReader<ParsedWebhook> queue, WriterDataSource dataSource, DatabaseState database,
        IngestOptions options, IngestMetrics metrics, DuplicateScreen screen, RecentContactProfiles contactProfiles, Sequencer sequencer, InboxBacklog backlog, GatewayRedis redis, FaultInjector faults, ILogger logger)
    {
        _id = id;
        _queue = queue;
        _dataSource = dataSource;
        _database = database;
        _options = options;
        _metrics = metrics;
        _screen = screen;
        _contactProfiles = contactProfiles;
        _sequencer = sequencer;
        _backlog = backlog;
        _redis = redis;
        _redisWait = TimeSpan.FromMilliseconds(redis.Settings.ScreenTimeoutMilliseconds);
        _faults = faults;
        _logger = logger;
    }

    public int Id => _id;

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

            _faults.Hit(FaultInjector.WriterBatch);
            if (_faults.IsArmed(FaultInjector.HistoryBatchStall) && _batch.Exists(static w => w.CarriesHistory) && _faults.Fires(FaultInjector.HistoryBatchStall))
            {
                await Task.Delay(TimeSpan.FromSeconds(5));
            }

            await WriteAsync(_batch);
        }
    }

    /// <summary>Webhooks this writer took and has not answered yet.</summary>
    public int InFlight => _batch.Count(static webhook => webhook is not null);

    /// <summary>
    /// Answers 503 to every webhook this writer took and has not completed: called by the pipeline after the writer
    /// failed unexpectedly, so that no request waits for a writer that is gone.
    /// </summary>
    public void FailInFlight()
    {
        foreach (ParsedWebhook? webhook in _batch)
        {
            // Only webhooks not answered yet are here (answered ones are removed at once or set to null, see WriteAsync).
            webhook?.TryComplete(IngestOutcome.Unavailable);
        }

        _batch.Clear();
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
            Finish(batch, IngestOutcome.Unavailable);
            return;
        }

        // Slow down to the sequencers' pace rather than let the backlog (and the lag to visibility) grow.
        await _backlog.HoldWhileBackloggedAsync();
        int screened = await _screen.ScreenAsync(batch, await DatabaseToScreenForAsync());
        _metrics.DuplicatesScreened(screened, 0);
        _contactProfiles.SkipUnchanged(batch, Environment.TickCount64);
        IngestOutcome outcome = await TryAppendAsync(batch);
        if (outcome == IngestOutcome.Committed)
        {
            NoteContactProfiles(batch);
        }
        else if (outcome == IngestOutcome.RejectedByDatabase)
        {
            // Some webhook's data was refused. Append them one by one, so that one bad payload cannot fail the others,
            // and keep the refused ones aside whole: their senders get 200, because the data is safely kept.
            for (int i = 0; i < batch.Count; i++)
            {
                ParsedWebhook webhook = batch[i];
                IngestOutcome single = await TryAppendAsync([webhook]);
                if (single == IngestOutcome.Committed)
                {
                    NoteContactProfiles([webhook]);
                }
                else if (single == IngestOutcome.RejectedByDatabase)
                {
                    // Kept aside, not in the inbox: its profiles are not noted.
                    single = await DeadLetterAsync(webhook);
                }

                // Answered: from now on the request may hand the webhook back to the pool for another request.
                batch[i] = null!;
                Finish([webhook], single);
            }

            batch.Clear();
            return;
        }

        Finish(batch, outcome);
    }

    /// <summary>Notes the committed batch's contact profiles, before the webhooks are answered and their buffers reused.</summary>
    private void NoteContactProfiles(List<ParsedWebhook> committed)
    {
        long now = Environment.TickCount64;
        foreach (ParsedWebhook webhook in committed)
        {
            _contactProfiles.NoteAppended(webhook, now);
        }
    }

    /// <summary>
    /// Answers the webhooks. For an appended batch, the Redis commands (remember the ids, wake the other instances'
    /// sequencers) are built from the webhooks' buffers and handed to the connection first, because completing a
    /// webhook returns its buffers to the pool; their replies are not awaited by the writer, so Redis never delays a
    /// 200 or the next batch.
    /// </summary>
    private void Finish(List<ParsedWebhook> batch, IngestOutcome outcome)
    {
        Task? redisCall = null;
        // A batch whose every record was screened as already stored (a retry storm) appended nothing: there is nothing
        // to remember and no sequencer to wake, here or elsewhere.
        if (outcome == IngestOutcome.Committed && InboxAppender.CountUnscreened(batch) > 0)
        {
            ulong elsewhere = _sequencer.Wake(history: batch.Exists(static w => w.CarriesHistory), ShardsOf(batch));
            _screen.NoteAppended(batch);
            try
            {
                redisCall = RememberAndWake(batch, elsewhere);
            }
            catch (Exception e)
            {
                // Nothing after the commit may keep a webhook from its answer: the data is stored.
                Log.RememberFailed(_logger, _id, e);
                _metrics.RedisFailed(RedisOperation.RecordAndPublish);
            }
        }

        Complete(batch, outcome);
        // Answered webhooks go back to the pool with their requests: drop them before anything else can happen.
        batch.Clear();
        if (redisCall is not null)
        {
            _ = ObserveAsync(redisCall);
        }
    }

    /// <summary>The shards of the accounts in <paramref name="batch"/>, as a mask (<see cref="AccountShard.MaskOf"/>).</summary>
    private static ulong ShardsOf(List<ParsedWebhook> batch)
    {
        ulong shards = 0;
        foreach (ParsedWebhook webhook in batch)
        {
            ReadOnlySpan<byte> last = default;
            foreach (ref readonly StagedRecord record in webhook.Records)
            {
                ReadOnlySpan<byte> account = webhook.Arena[record.Account];
                // A webhook's records are nearly always of one account: hash each account once.
                if (last.IsEmpty || !account.SequenceEqual(last))
                {
                    shards |= AccountShard.MaskOf(account);
                    last = account;
                }
            }
        }

        return shards;
    }

    private async Task ObserveAsync(Task redisCall)
    {
        try
        {
            await redisCall.WaitAsync(_redisWait);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // Not remembered: the next retry of these ids is caught by the sequencer instead. Not woken: the other
            // instances' sequencers poll.
            _metrics.RedisFailed(RedisOperation.RecordAndPublish);
        }
    }

    /// <summary>
    /// Remembers the batch's ids, and wakes the other instances' sessions for the shards of <paramref name="elsewhere"/>
    /// (those no local session holds). A batch whose shards are all held here publishes no wake-up: a single instance
    /// never does, where every PUBLISH used to go to Redis and straight back to this process to be dropped.
    /// </summary>
    private Task? RememberAndWake(List<ParsedWebhook> committed, ulong elsewhere)
    {
        IDatabase? redis = _redis.Commands;
        if (redis is null)
        {
            return null;
        }

        Task? remember = _screen.RememberAsync(committed, _appender?.DatabaseIdentity ?? []);
        if (elsewhere == 0)
        {
            // An empty mask would ask every session to rebalance instead (Sequencer.WakePayload).
            return remember;
        }

        Task wake = redis.PublishAsync(_redis.InboxChannel, _sequencer.WakePayload(elsewhere));
        return remember is null ? wake : Task.WhenAll(remember, wake);
    }

    /// <summary>Appends every unscreened record of the batch to the inbox in one transaction; the outcome is final.</summary>
    private async Task<IngestOutcome> TryAppendAsync(List<ParsedWebhook> batch)
    {
        if (InboxAppender.CountUnscreened(batch) == 0)
        {
            // Every record was screened as already stored: there is nothing to write, and the retry is answered 200.
            return IngestOutcome.Committed;
        }

        long started = Stopwatch.GetTimestamp();
        try
        {
            await (await EnsureAppenderAsync()).AppendAsync(batch);
            _metrics.BatchAppended(batch.Count, Stopwatch.GetElapsedTime(started));
            return IngestOutcome.Committed;
        }
        catch (PostgresException e) when (SqlStates.IsDataError(e))
        {
            _refusal = e;
            Log.DataRejected(_logger, _id, batch.Count, e.SqlState, e.MessageText);
            return IngestOutcome.RejectedByDatabase;
        }
        catch (Exception e)
        {
            // The append rolled back, or its commit's fate is unknown: the webhooks are answered 503 and Meta redelivers
            // them; if the commit did happen, the sequencer drops the redelivered copies.
            Log.WriteFailed(_logger, _id, batch.Count, e);
            _metrics.WriteFailed();
            await ResetConnectionAsync();
            _reconnectNotBefore = Stopwatch.GetTimestamp() + (_options.ReconnectBackoffMilliseconds * Stopwatch.Frequency / 1000);
            return IngestOutcome.Unavailable;
        }
    }

    /// <summary>
    /// Keeps a webhook that PostgreSQL refused in <c>dead_letters</c>, with its exact signed body and the reason, and
    /// answers 200: it is safely kept, and a 4xx or 5xx would only make Meta send it again and again.
    /// </summary>
    private async Task<IngestOutcome> DeadLetterAsync(ParsedWebhook webhook)
    {
        try
        {
            PostgresException refusal = _refusal!;
            NpgsqlConnection connection = (await EnsureAppenderAsync()).Connection;
            await using NpgsqlCommand command = new(InboxSql.DeadLetterWebhook, connection);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = refusal.SqlState });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = refusal.MessageText });
            command.Parameters.Add(new NpgsqlParameter<ReadOnlyMemory<byte>> { TypedValue = webhook.Body.Memory, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Bytea });
            await command.ExecuteNonQueryAsync();
            Log.DeadLettered(_logger, refusal.SqlState, refusal.MessageText);
            _metrics.DeadLettered(DeadLetterStage.Ack);
            return IngestOutcome.Committed;
        }
        catch (Exception e)
        {
            Log.WriteFailed(_logger, _id, 1, e);
            _metrics.WriteFailed();
            await ResetConnectionAsync();
            return IngestOutcome.Unavailable;
        }
    }

    /// <summary>
    /// The identity of the database this writer's connection commits to, for the Redis screen: Redis' answers are only
    /// about that database. Empty (no screening) when there is no connection yet and none can be opened; the append
    /// then meets the same failure and handles it.
    /// </summary>
    private async ValueTask<byte[]> DatabaseToScreenForAsync()
    {
        if (!_screen.Enabled)
        {
            return [];
        }

        try
        {
            return (await EnsureAppenderAsync()).DatabaseIdentity;
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException)
        {
            return [];
        }
    }

    private async ValueTask<InboxAppender> EnsureAppenderAsync()
    {
        if (_appender is { Connection.State: System.Data.ConnectionState.Open })
        {
            return _appender;
        }

        await ResetConnectionAsync();
        if (_hadConnection)
        {
            _metrics.WriterReconnected();
        }

        NpgsqlConnection connection = await _dataSource.OpenConnectionAsync();
        try
        {
            _appender = await InboxAppender.PrepareAsync(connection);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }

        _hadConnection = true;
        return _appender;
    }

    private async ValueTask ResetConnectionAsync()
    {
        if (_appender is not null)
        {
            // A connection that failed mid-protocol is never reused (Npgsql breaks it; disposing discards it).
            await _appender.DisposeAsync();
            _appender = null;
        }
    }

    private static void Complete(List<ParsedWebhook> batch, IngestOutcome outcome)
    {
        foreach (ParsedWebhook webhook in batch)
        {
            webhook.TryComplete(outcome);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await ResetConnectionAsync();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 200, EventName = "WriteFailed", Level = LogLevel.Warning,
            Message = "Writer {Writer} could not append a batch of {Webhooks} webhook(s) to the inbox; they are answered 503 and will be redelivered.")]
        public static partial void WriteFailed(ILogger logger, int writer, int webhooks, Exception exception);

        [LoggerMessage(EventId = 201, EventName = "DataRejected", Level = LogLevel.Debug,
            Message = "Writer {Writer}: PostgreSQL refused data in a batch of {Webhooks} webhook(s): {SqlState} {Reason}")]
        public static partial void DataRejected(ILogger logger, int writer, int webhooks, string sqlState, string reason);

        [LoggerMessage(EventId = 203, EventName = "RememberFailed", Level = LogLevel.Error,
            Message = "Writer {Writer} appended a batch but could not record its ids in Redis; PostgreSQL catches their retries instead.")]
        public static partial void RememberFailed(ILogger logger, int writer, Exception exception);

        [LoggerMessage(EventId = 204, EventName = "WebhookDeadLettered", Level = LogLevel.Warning,
            Message = "PostgreSQL refused a signed webhook ({SqlState}: {Reason}); its body was kept in dead_letters and it was answered 200.")]
        public static partial void DeadLettered(ILogger logger, string sqlState, string reason);
    }
}
