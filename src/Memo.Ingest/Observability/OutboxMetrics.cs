using System.Diagnostics.Metrics;
using Memo.Ingest.Outbox;

namespace Memo.Ingest.Observability;

/// <summary>
/// The outbox's instruments (same meter as <see cref="IngestMetrics"/>): depth and age of the open rows (read from
/// PostgreSQL, so every instance reports the same shared outbox), sends by result and Meta error code, and the waits
/// that Meta's limits impose. deploy/prometheus/rules.yml alerts on a stuck outbox and on unknown sends.
/// </summary>
internal sealed class OutboxMetrics
{
    private readonly Counter<long> _sends;
    private readonly Counter<long> _throttled;
    private readonly Histogram<double> _sendDuration;
    private long _queued;
    private long _sending;
    private long _unknown;
    private double _oldestSeconds;

    public OutboxMetrics(IMeterFactory meterFactory)
    {
        Meter meter = meterFactory.Create(IngestMetrics.MeterName);
        _sends = meter.CreateCounter<long>("memo.outbox.sends", "{send}",
            "Calls to the Cloud API's messages endpoint by result (accepted, failed, retry, throttled, timeout) and Meta error code.");
        _throttled = meter.CreateCounter<long>("memo.outbox.throttled", "{wait}",
            "Replies held back by a limit before they were sent (limit: account throughput, pair rate) or after Meta said so.");
        _sendDuration = meter.CreateHistogram("memo.outbox.send.duration", "s", "Time of one call to the Cloud API's messages endpoint.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });
        meter.CreateObservableGauge("memo.outbox.depth", () => new Measurement<long>[]
        {
            new(Volatile.Read(ref _queued), new KeyValuePair<string, object?>("state", "queued")),
            new(Volatile.Read(ref _sending), new KeyValuePair<string, object?>("state", "sending")),
            new(Volatile.Read(ref _unknown), new KeyValuePair<string, object?>("state", "unknown")),
        }, "{reply}", "Replies in the outbox not yet settled, by state (unknown: cut off mid-send; needs an operator's look).");
        meter.CreateObservableGauge("memo.outbox.age", () => Volatile.Read(ref _oldestSeconds), "s",
            "Age of the oldest reply still queued or sending (0 when none is).");
    }

    public void Depth(long queued, long sending, long unknown, double oldestSeconds)
    {
        Volatile.Write(ref _queued, queued);
        Volatile.Write(ref _sending, sending);
        Volatile.Write(ref _unknown, unknown);
        Volatile.Write(ref _oldestSeconds, oldestSeconds);
    }

    public void Sent(in SendOutcome outcome, TimeSpan elapsed)
    {
        _sends.Add(1, new KeyValuePair<string, object?>("result", SendOutcome.Name(outcome.Kind)),
            new KeyValuePair<string, object?>("code", outcome.ErrorCode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? ""));
        _sendDuration.Record(elapsed.TotalSeconds);
    }

    public void Throttled(string limit) => _throttled.Add(1, new KeyValuePair<string, object?>("limit", limit));
}
