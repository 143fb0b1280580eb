using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Memo.Ingest.Ingest;
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
}
