using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Memo.Ingest.Ingest;
using Memo.Ingest.Redis;
using Memo.Ingest.Webhooks;

namespace Memo.Ingest.Observability;

/// <summary>
/// The gateway's instruments, created from <see cref="IMeterFactory"/> with OpenTelemetry-style names and units.
/// Recording checks <c>Enabled</c> first, so instruments nobody listens to cost a branch.
/// </summary>
internal sealed class IngestMetrics
{
    public const string MeterName = "Memo.Ingest";

    private readonly Counter<long> _webhookRequests;
    private readonly Counter<long> _events;
    private readonly Counter<long> _writeErrors;
    private readonly Histogram<double> _batchWebhooks;
    private readonly Histogram<double> _commitDuration;
    private readonly Histogram<double> _ackDuration;
    private readonly Counter<long> _duplicates;
    private readonly Counter<long> _redisErrors;
    private readonly Histogram<double> _screenDuration;
    private readonly Counter<long> _busDelivered;
    private readonly Counter<long> _busBackfilled;
    private readonly Counter<long> _busDropped;
    private readonly Meter _meter;

    public IngestMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(MeterName);
        _webhookRequests = _meter.CreateCounter<long>("memo.webhook.requests", "{request}", "Webhook POSTs by HTTP status and outcome.");
        _events = _meter.CreateCounter<long>("memo.ingest.events", "{event}", "Committed events (each took one seq) by kind.");
        _writeErrors = _meter.CreateCounter<long>("memo.ingest.write.errors", "{error}", "Batches that PostgreSQL could not commit.");
        _batchWebhooks = _meter.CreateHistogram("memo.ingest.batch.webhooks", "{webhook}", "Webhooks per committed transaction.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] });
        _commitDuration = _meter.CreateHistogram("memo.ingest.commit.duration", "s", "COPY + apply + COMMIT time per batch.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] });
        _ackDuration = _meter.CreateHistogram("memo.webhook.ack.duration", "s", "Time from request start to the 200 (includes the durable commit).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });
        _duplicates = _meter.CreateCounter<long>("memo.ingest.duplicates", "{record}",
            "Redelivered messages and status events that were not stored again, by what recognised them (redis before the write, postgresql during it).");
        _redisErrors = _meter.CreateCounter<long>("memo.redis.errors", "{error}", "Redis calls that failed or timed out (ingestion went on without them).");
        _screenDuration = _meter.CreateHistogram("memo.redis.screen.duration", "s", "Time a batch waited for Redis to say which of its ids are known.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1] });
        _busDelivered = _meter.CreateCounter<long>("memo.bus.events.delivered", "{event}", "Committed events handed to this instance's live listeners.");
        _busBackfilled = _meter.CreateCounter<long>("memo.bus.events.backfilled", "{event}", "Events read from PostgreSQL because pub/sub missed or reordered them.");
        _busDropped = _meter.CreateCounter<long>("memo.bus.frames.dropped", "{frame}", "Event frames dropped because the dispatcher was behind (caught up from PostgreSQL).");
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
            new KeyValuePair<string, object?>("http.response.status_code", statusCode),
            new KeyValuePair<string, object?>("memo.outcome", reason == WebhookRejectionReason.None ? "accepted" : WebhookRejections.Code(reason)));

    public void BatchCommitted(int webhooks, BatchSummary summary, TimeSpan elapsed)
    {
        if (_batchWebhooks.Enabled)
        {
            _batchWebhooks.Record(webhooks);
        }

        if (_commitDuration.Enabled)
        {
            _commitDuration.Record(elapsed.TotalSeconds);
        }

        if (_events.Enabled)
        {
            RecordEvents(summary);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void RecordEvents(BatchSummary summary)
    {
        _events.Add(summary.MessagesCreated, new KeyValuePair<string, object?>("memo.event.kind", "message.created"));
        _events.Add(summary.StatusEvents, new KeyValuePair<string, object?>("memo.event.kind", "message.status"));
        _events.Add(summary.ContactsUpdated, new KeyValuePair<string, object?>("memo.event.kind", "contact.updated"));
        _events.Add(summary.ConversationsUpdated, new KeyValuePair<string, object?>("memo.event.kind", "conversation.updated"));
    }

    public void WriteFailed() => _writeErrors.Add(1);

    public void DuplicatesScreened(int byRedis, int byPostgres)
    {
        if (_duplicates.Enabled && (byRedis | byPostgres) != 0)
        {
            RecordDuplicates(byRedis, byPostgres);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void RecordDuplicates(int byRedis, int byPostgres)
    {
        _duplicates.Add(byRedis, new KeyValuePair<string, object?>("memo.screened_by", "redis"));
        _duplicates.Add(byPostgres, new KeyValuePair<string, object?>("memo.screened_by", "postgresql"));
    }

    public void RedisFailed(RedisOperation operation) =>
        _redisErrors.Add(1, new KeyValuePair<string, object?>("memo.redis.operation", operation == RedisOperation.Screen ? "screen" : "record_publish"));

    public void RedisScreened(TimeSpan elapsed)
    {
        if (_screenDuration.Enabled)
        {
            _screenDuration.Record(elapsed.TotalSeconds);
        }
    }

    public void BusEventDelivered() => _busDelivered.Add(1);

    public void BusEventsBackfilled(int count)
    {
        if (count > 0)
        {
            _busBackfilled.Add(count);
        }
    }

    public void BusFramesDropped() => _busDropped.Add(1);
}
