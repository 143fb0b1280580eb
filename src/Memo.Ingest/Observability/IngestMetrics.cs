using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Memo.Ingest.Ingest;
using Memo.Ingest.Redis;
using Memo.Ingest.Sequencing;
using Memo.Ingest.Webhooks;

namespace Memo.Ingest.Observability;

/// <summary>
/// The gateway's instruments, created from <see cref="IMeterFactory"/> with OpenTelemetry-style names and units.
/// Recording checks <c>Enabled</c> first, so instruments nobody listens to cost a branch.
///
/// Rare events (errors, reconnects, screened duplicates, bus repairs) are plain counters read by observable
/// instruments: they are exported from the first scrape on, at 0, so <c>rate()</c> and alerts work before the first
/// failure, and counting them costs one interlocked add.
/// </summary>
internal sealed class IngestMetrics
{
    public const string MeterName = "Memo.Ingest";

    // The two lanes of the inbox and the sequencers (tag memo.lane); preallocated, so a tagged recording boxes nothing.
    private static readonly KeyValuePair<string, object?> LiveLane = new("memo.lane", "live");
    private static readonly KeyValuePair<string, object?> HistoryLane = new("memo.lane", "history");

    private readonly Counter<long> _webhookRequests;
    private readonly Counter<long> _events;
    private readonly Histogram<double> _batchWebhooks;
    private readonly Histogram<double> _commitDuration;
    private readonly Histogram<double> _ackDuration;
    private readonly Histogram<double> _screenDuration;
    private readonly Histogram<double> _sequencerRecords;
    private readonly Histogram<double> _sequencerDuration;
    private readonly Histogram<double> _visibilityDelay;
    private readonly Meter _meter;

    private long _writeErrors;
    private long _writerReconnects;
    private long _readRateLimited;
    private long _screenedByRedis;
    private long _screenedByPostgres;
    private long _redisScreenErrors;
    private long _redisRecordErrors;
    private long _redisReconnects;
    private long _liveDispatched;
    private long _liveRepaired;
    private long _liveFramesDropped;
    private long _liveFailures;
    private long _writerRestarts;
    private long _sequencerErrors;
    private long _shardMoves;
    private long _emptyRounds;
    private long _deadLetteredAck;
    private long _deadLetteredSequencer;

    // Per stream transport, indexed by TransportIndex: 0 sse, 1 websocket.
    private readonly long[] _streamConnections = new long[2];
    private readonly long[] _streamEventsSent = new long[2];
    private readonly long[] _streamCutOff = new long[2];

    // Cursors refused as expired, indexed by ReaderIndex: 0 sse, 1 websocket, 2 sync.
    private readonly long[] _cursorsExpired = new long[3];

    public IngestMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(MeterName);
        _webhookRequests = _meter.CreateCounter<long>("memo.webhook.requests", "{request}", "Webhook POSTs by HTTP status and outcome.");
        _events = _meter.CreateCounter<long>("memo.ingest.events", "{event}", "Committed events (each took one seq) by kind.");
        _batchWebhooks = _meter.CreateHistogram("memo.ingest.batch.webhooks", "{webhook}", "Webhooks per committed transaction.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] });
        _commitDuration = _meter.CreateHistogram("memo.ingest.commit.duration", "s", "Time to append one batch to the inbox (COPY and its commit).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] });
        _ackDuration = _meter.CreateHistogram("memo.webhook.ack.duration", "s", "Time from request start to the 200 (includes the durable commit).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });
        _screenDuration = _meter.CreateHistogram("memo.redis.screen.duration", "s", "Time a batch waited for Redis to say which of its ids are known.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1] });

        _sequencerRecords = _meter.CreateHistogram("memo.sequencer.batch.records", "{record}", "Inbox records taken by one sequencer round.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000] });
        _sequencerDuration = _meter.CreateHistogram("memo.sequencer.round.duration", "s", "Time of one sequencer round (take, deduplicate, number, project, commit).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] });
        _visibilityDelay = _meter.CreateHistogram("memo.sequencer.visibility.delay", "s",
            "Per sequencer round, how long its oldest record waited between its acknowledgement and its commit (when it became visible).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });

        _meter.CreateObservableCounter("memo.ingest.write.errors", () => Volatile.Read(ref _writeErrors), "{error}",
            "Batches that PostgreSQL could not commit (answered 503).");
        _meter.CreateObservableCounter("memo.read.rate_limited", () => Volatile.Read(ref _readRateLimited), "{request}",
            "Sync and stream requests answered 429 because their token used up its rate (Memo:Auth:ReadRequestsPerSecond).");
        _meter.CreateObservableCounter("memo.ingest.writer.reconnects", () => Volatile.Read(ref _writerReconnects), "{connection}",
            "Times a writer opened a new PostgreSQL connection after a failure.");
        _meter.CreateObservableCounter("memo.ingest.duplicates", () => (Measurement<long>[])
            [
                new(Volatile.Read(ref _screenedByRedis), new KeyValuePair<string, object?>("memo.screened_by", "redis")),
                new(Volatile.Read(ref _screenedByPostgres), new KeyValuePair<string, object?>("memo.screened_by", "postgresql")),
            ], "{record}",
            "Redelivered messages and status events that were not stored again, by what recognised them (redis before the append, postgresql when sequenced).");
        _meter.CreateObservableCounter("memo.redis.errors", () => (Measurement<long>[])
            [
                new(Volatile.Read(ref _redisScreenErrors), new KeyValuePair<string, object?>("memo.redis.operation", "screen")),
                new(Volatile.Read(ref _redisRecordErrors), new KeyValuePair<string, object?>("memo.redis.operation", "record_publish")),
            ], "{error}", "Redis calls that failed or timed out (ingestion went on without them).");
        _meter.CreateObservableCounter("memo.redis.reconnects", () => Volatile.Read(ref _redisReconnects), "{connection}",
            "Times the Redis command connection was re-established after being lost.");
        _meter.CreateObservableCounter("memo.live.events.dispatched", () => Volatile.Read(ref _liveDispatched), "{event}",
            "Announced events of accounts followed on this instance, handed to their feeds.");
        _meter.CreateObservableCounter("memo.live.events.repaired", () => Volatile.Read(ref _liveRepaired), "{event}",
            "Events read from PostgreSQL because their announcement was lost or reordered.");
        _meter.CreateObservableCounter("memo.live.loop.failures", () => Volatile.Read(ref _liveFailures), "{failure}",
            "Unexpected failures of the stream hub's loops and repairs (each is retried; followers wait, in order).");
        _meter.CreateObservableUpDownCounter("memo.stream.connections", () => PerTransport(_streamConnections), "{connection}",
            "Open live stream connections by transport.");
        _meter.CreateObservableCounter("memo.stream.events.sent", () => PerTransport(_streamEventsSent), "{event}",
            "Events written to stream clients (replayed and live) by transport.");
        _meter.CreateObservableCounter("memo.stream.slow_consumer.disconnects", () => PerTransport(_streamCutOff), "{connection}",
            "Stream clients cut off (after a resync signal) because their queue overflowed.");
        _meter.CreateObservableCounter("memo.cursors.expired", () => (Measurement<long>[])
            [
                new(Volatile.Read(ref _cursorsExpired[0]), new KeyValuePair<string, object?>("memo.reader", "sse")),
                new(Volatile.Read(ref _cursorsExpired[1]), new KeyValuePair<string, object?>("memo.reader", "websocket")),
                new(Volatile.Read(ref _cursorsExpired[2]), new KeyValuePair<string, object?>("memo.reader", "sync")),
            ], "{request}", "Reads refused 410 cursor_expired: their cursor's next events were dropped (retention), so the client must re-read.");
        _meter.CreateObservableCounter("memo.ingest.writer.restarts", () => Volatile.Read(ref _writerRestarts), "{restart}",
            "Writers that failed unexpectedly and were restarted (their webhooks answered 503).");
        _meter.CreateObservableCounter("memo.sequencer.errors", () => Volatile.Read(ref _sequencerErrors), "{error}",
            "Sequencer rounds that failed for a reason other than refused data (the session is reopened).");
        _meter.CreateObservableCounter("memo.sequencer.shard.moves", () => Volatile.Read(ref _shardMoves), "{shard}",
            "Shards this instance's leading sequencer session assigned anew: moved to a less busy session, or given an owner when theirs had gone (all 64 when the first session starts). A moved shard waits up to a rebalance interval for its new owner.");
        _meter.CreateObservableCounter("memo.sequencer.rounds.empty", () => Volatile.Read(ref _emptyRounds), "{round}",
            "Sequencer statements that found no record to take: an idle session's polls, and wake-ups whose records an earlier round had taken. Each costs PostgreSQL a round's fixed cost.");
        _meter.CreateObservableCounter("memo.ingest.dead_letters", () => (Measurement<long>[])
            [
                new(Volatile.Read(ref _deadLetteredAck), new KeyValuePair<string, object?>("memo.stage", "ack")),
                new(Volatile.Read(ref _deadLetteredSequencer), new KeyValuePair<string, object?>("memo.stage", "sequencer")),
            ], "{record}",
            "Webhooks (ack) and records (sequencer) that PostgreSQL refused and that were kept in dead_letters instead.");
        _meter.CreateObservableCounter("memo.live.frames.dropped", () => Volatile.Read(ref _liveFramesDropped), "{frame}",
            "Announced event frames dropped because the dispatcher was behind (their events are repaired from PostgreSQL).");
    }

    public void ObserveQueue(Func<int> depth) =>
        _meter.CreateObservableGauge("memo.ingest.queue.depth", () => depth(), "{webhook}", "Webhooks waiting for a writer.");

    public void WebhookAnswered(int statusCode, WebhookRejectionReason reason, TimeSpan elapsed)
    {
        if (_webhookRequests.Enabled)
        {
            RecordWebhook(statusCode, reason);
        }

        if (_ackDuration.Enabled && statusCode == 200)
        {
            _ackDuration.Record(elapsed.TotalSeconds);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void RecordWebhook(int statusCode, WebhookRejectionReason reason) =>
        _webhookRequests.Add(1,
            new KeyValuePair<string, object?>("http.response.status_code", BoxedStatusCode(statusCode)),
            new KeyValuePair<string, object?>("memo.outcome", reason == WebhookRejectionReason.None ? "accepted" : WebhookRejections.Code(reason)));

    /// <summary>
    /// The inbox backlog per lane: live records and the history backfill (coexistence) are measured and bounded apart,
    /// and a backfill waits behind live traffic by design, so an alert or an autoscaler looks at the live lane.
    /// </summary>
    public void ObserveBacklog(Func<long> records, Func<double> oldestSeconds, Func<long> historyRecords, Func<double> historyOldestSeconds)
    {
        _meter.CreateObservableGauge("memo.ingest.inbox.backlog", () => (Measurement<long>[])
            [
                new(records(), LiveLane),
                new(historyRecords(), HistoryLane),
            ], "{record}",
            "Records acknowledged and not yet sequenced, by lane (live; history: a coexistence backfill); an upper estimate, shared by every instance.");
        _meter.CreateObservableGauge("memo.ingest.inbox.age", () => (Measurement<double>[])
            [
                new(oldestSeconds(), LiveLane),
                new(historyOldestSeconds(), HistoryLane),
            ], "s",
            "Age of the oldest record waiting to be sequenced, by lane (0 when none waits).");
    }

    public void ObserveSequencer(Func<int> shards) =>
        _meter.CreateObservableGauge("memo.sequencer.shards", shards, "{shard}", "Account shards this instance's sequencers own (64 across all instances).");

    public void BatchAppended(int webhooks, TimeSpan elapsed)
    {
        if (_batchWebhooks.Enabled)
        {
            _batchWebhooks.Record(webhooks);
        }

        if (_commitDuration.Enabled)
        {
            _commitDuration.Record(elapsed.TotalSeconds);
        }
    }

    /// <summary>
    /// One sequencer round of the live records or of a history slice (<paramref name="history"/>): by lane, because a
    /// backfill's records wait behind live traffic on purpose, and mixed in one series they would hide the live delay.
    /// </summary>
    public void SequencerRound(int records, BatchSummary summary, TimeSpan elapsed, TimeSpan oldestWaited, bool history = false)
    {
        KeyValuePair<string, object?> lane = history ? HistoryLane : LiveLane;
        if (_sequencerRecords.Enabled)
        {
            _sequencerRecords.Record(records, lane);
        }

        if (_sequencerDuration.Enabled)
        {
            _sequencerDuration.Record(elapsed.TotalSeconds, lane);
        }

        if (_visibilityDelay.Enabled)
        {
            _visibilityDelay.Record(oldestWaited.TotalSeconds, lane);
        }

        if (_events.Enabled)
        {
            RecordEvents(summary);
        }
    }

    public void SequencerFailed() => Interlocked.Increment(ref _sequencerErrors);

    public void ShardsMoved(int shards) => Interlocked.Add(ref _shardMoves, shards);

    public void SequencerFoundNothing() => Interlocked.Increment(ref _emptyRounds);

    public void WriterRestarted() => Interlocked.Increment(ref _writerRestarts);

    public void DeadLettered(DeadLetterStage stage) =>
        Interlocked.Increment(ref stage == DeadLetterStage.Ack ? ref _deadLetteredAck : ref _deadLetteredSequencer);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void RecordEvents(BatchSummary summary)
    {
        _events.Add(summary.MessagesCreated, new KeyValuePair<string, object?>("memo.event.kind", "message.created"));
        _events.Add(summary.StatusEvents, new KeyValuePair<string, object?>("memo.event.kind", "message.status"));
        _events.Add(summary.ContactsUpdated, new KeyValuePair<string, object?>("memo.event.kind", "contact.updated"));
        _events.Add(summary.ConversationsUpdated, new KeyValuePair<string, object?>("memo.event.kind", "conversation.updated"));
    }

    public void WriteFailed() => Interlocked.Increment(ref _writeErrors);

    public void WriterReconnected() => Interlocked.Increment(ref _writerReconnects);

    public void ReadRateLimited() => Interlocked.Increment(ref _readRateLimited);

    public void RedisReconnected() => Interlocked.Increment(ref _redisReconnects);

    public void ObserveRedis(Func<int> connected) =>
        _meter.CreateObservableGauge("memo.redis.connected", () => connected(), "1", "1 while the Redis command connection is up, 0 while it is down or Redis is not configured.");

    public void DuplicatesScreened(int byRedis, int byPostgres)
    {
        if (byRedis != 0)
        {
            Interlocked.Add(ref _screenedByRedis, byRedis);
        }

        if (byPostgres != 0)
        {
            Interlocked.Add(ref _screenedByPostgres, byPostgres);
        }
    }

    // Tag values are objects: the answers' status codes are boxed once here, not on every request.
    private static readonly object[] StatusCodes = [200, 400, 401, 403, 413, 415, 503];

    private static object BoxedStatusCode(int statusCode)
    {
        foreach (object boxed in StatusCodes)
        {
            if ((int)boxed == statusCode)
            {
                return boxed;
            }
        }

        return statusCode;
    }

    public void RedisFailed(RedisOperation operation) =>
        Interlocked.Increment(ref operation == RedisOperation.Screen ? ref _redisScreenErrors : ref _redisRecordErrors);

    public void RedisScreened(TimeSpan elapsed)
    {
        if (_screenDuration.Enabled)
        {
            _screenDuration.Record(elapsed.TotalSeconds);
        }
    }

    public void LiveEventsDispatched(int count) => Interlocked.Add(ref _liveDispatched, count);

    public void LiveEventsRepaired(int count) => Interlocked.Add(ref _liveRepaired, count);

    public void LiveFramesDropped() => Interlocked.Increment(ref _liveFramesDropped);

    public void LiveLoopFailed() => Interlocked.Increment(ref _liveFailures);

    public void ObserveFollowedAccounts(Func<int> count) =>
        _meter.CreateObservableGauge("memo.live.followed_accounts", () => count(), "{account}", "Accounts with stream followers on this instance.");

    public void StreamOpened(string transport) => Interlocked.Increment(ref _streamConnections[TransportIndex(transport)]);

    public void StreamClosed(string transport) => Interlocked.Decrement(ref _streamConnections[TransportIndex(transport)]);

    public void StreamEventSent(string transport) => Interlocked.Increment(ref _streamEventsSent[TransportIndex(transport)]);

    public void StreamCutOff(string transport) => Interlocked.Increment(ref _streamCutOff[TransportIndex(transport)]);

    /// <summary>A read refused as expired (<paramref name="reader"/>: <c>sse</c>, <c>websocket</c> or <c>sync</c>).</summary>
    public void CursorExpired(string reader) =>
        Interlocked.Increment(ref _cursorsExpired[reader switch { "sse" => 0, "websocket" => 1, _ => 2 }]);

    private static int TransportIndex(string transport) => transport == "sse" ? 0 : 1;

    private static Measurement<long>[] PerTransport(long[] values) =>
    [
        new(Volatile.Read(ref values[0]), new KeyValuePair<string, object?>("memo.transport", "sse")),
        new(Volatile.Read(ref values[1]), new KeyValuePair<string, object?>("memo.transport", "websocket")),
    ];
}
