using System.Globalization;
using System.Text;
using System.Text.Json;
using Memo.Ingest.Load.OpenModel;

namespace Memo.Ingest.Load.Run;

/// <summary>The figures of a load run: a Markdown table, the same as JSON with a per-second series, and an SVG chart
/// of throughput and latency percentiles over time.</summary>
internal sealed class RunReport
{
    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    private readonly RunSettings _settings;
    private readonly StepFigures[] _steps;
    private readonly SecondFigures[] _seconds;
    private readonly LossCheck.Result _loss;
    private readonly long _subscriberEvents;
    private readonly long _subscriberSseEvents;

    public RunReport(RunSettings settings, LoadStep[] steps, RequestSample[] samples, List<StepBoundary> boundaries, long runStart,
        SubscriberFleet? fleet, LossCheck.Result loss)
    {
        _settings = settings;
        _loss = loss;
        _subscriberEvents = fleet?.Events ?? 0;
        _subscriberSseEvents = fleet?.SseEvents ?? 0;
        SubscriberDeliveriesPerSecond = _subscriberEvents / Math.Max(1e-9, fleet?.DeliverySpanSeconds ?? 0);
        (long Received, int Latency)[] endToEnd = fleet is null ? [] : [.. fleet.Timeline()];
        _steps = new StepFigures[steps.Length];
        for (int i = 0; i < steps.Length; i++)
        {
            RequestSample[] ofStep = [.. samples.Where(s => s.Step == i)];
            StepBoundary from = boundaries[i];
            StepBoundary to = boundaries[i + 1];
            double wall = (to.AtMicroseconds - from.AtMicroseconds) / 1e6;
            LatencySummary sender = LatencySummary.Of(ofStep.Where(static s => s.Status == 200).Select(static s => s.LatencyMicroseconds));
            int other = ofStep.Count(static s => s.Status is not (200 or 503));
            int refused = ofStep.Count(static s => s.Status == 503);
            _steps[i] = new StepFigures(
                steps[i].Rate,
                steps[i].Label,
                steps[i].WarmUp,
                ofStep.Length,
                ofStep.Count(static s => s.Status == 200),
                refused,
                other,
                ofStep.Sum(static s => (long)s.Messages) / steps[i].AnsweredSeconds(ofStep),
                sender,
                to.Histogram.QuantileSince(from.Histogram, 0.99),
                $"{to.Visibility.QuantileSince(from.Visibility, 0.5)} / {to.Visibility.QuantileSince(from.Visibility, 0.99)}",
                SequencerRounds.Between(from.Rounds, to.Rounds, wall),
                LatencySummary.Of(endToEnd.Where(e => e.Received >= from.AtMicroseconds && e.Received < to.AtMicroseconds).Select(static e => e.Latency)),
                100 * (to.GatewayCpuSeconds - from.GatewayCpuSeconds) / wall,
                100 * (to.PostgresCpuSeconds - from.PostgresCpuSeconds) / wall,
                100 * (to.LoadToolCpuSeconds - from.LoadToolCpuSeconds) / wall,
                100 * (to.Machine.BusySeconds - from.Machine.BusySeconds) / wall,
                100 * (to.Machine.StolenSeconds - from.Machine.StolenSeconds) / wall,
                WalFlushes.Between(from.Wal, to.Wal, wall),
                SequencerBackends.Between(from.Sequencer, to.Sequencer, wall),
                Sustainable: !steps[i].WarmUp && other == 0 && refused == 0 && sender.Count > 0 && sender.P99 <= settings.P99BoundMilliseconds);
        }

        _seconds = [.. samples.GroupBy(s => (s.IntendedMicroseconds - runStart) / 1_000_000).OrderBy(static g => g.Key).Select(g =>
        {
            LatencySummary latency = LatencySummary.Of(g.Where(static s => s.Status == 200).Select(static s => s.LatencyMicroseconds));
            LatencySummary e2e = LatencySummary.Of(endToEnd.Where(e => (e.Received - runStart) / 1_000_000 == g.Key).Select(static e => e.Latency));
            return new SecondFigures((int)g.Key, g.Sum(static s => (long)s.Messages), g.Count(static s => s.Status is not 200), latency.P50, latency.P99, e2e.P99);
        })];
    }

    /// <summary>Acknowledged messages per second in the step that acknowledged the most (the warm-up is no step).</summary>
    public double PeakMessagesPerSecond => _steps.Where(static s => !s.WarmUp).Max(static s => s.MessagesPerSecond);

    /// <summary>Events delivered to subscribers per second over the whole run.</summary>
    public double SubscriberDeliveriesPerSecond { get; init; }

    /// <summary>The highest step rate that held the p99 bound with nothing but 200s, if any.</summary>
    public double? MaxSustainableRate => _settings.IsClosedLoop ? null
        : _steps.Where(static s => s.Sustainable).Select(static s => (double?)s.Rate).Max();

    public string Markdown()
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture,
            $"Load run: {_settings.MessagesPerPost} message(s) per POST, {_settings.Accounts} accounts, {_settings.DuplicateRatio:P0} duplicate POSTs, " +
            $"{_settings.StatusRatio:P0} status POSTs, {(_settings.IsClosedLoop ? "closed loop (latency from each request's send)" : $"{_settings.Connections} connections ({_settings.Client})")}, {_settings.Subscribers} subscribers, " +
            $"{(_settings.WithRedis ? "with" : "without")} Redis, {(_settings.NativeBinary is null ? "JIT" : "native")} gateway, {_settings.StepSeconds} s per step{WarmUpNote()}.");
        text.AppendLine();
        text.AppendLine("| POSTs/s offered (or closed loop ×connections) | requests | 200 | 503 | other | messages/s acknowledged | ack latency (sender, from intended send) | gateway ack p99 | sequencer delay p50 / p99 (per live round, oldest record) | live rounds/s × ms each, records each | webhook → event (subscribers) | CPU gateway | CPU PostgreSQL | CPU load tool | CPU machine: busy / stolen | PostgreSQL's WAL flushes/s × ms each | sequencer's backends: on a core / waiting for one | p99 ≤ bound, all 200 |");
        text.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (StepFigures s in _steps)
        {
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {(s.WarmUp ? "warm-up " : "")}{s.Label} | {s.Requests} | {s.Ok} | {s.Refused} | {s.Other} | {s.MessagesPerSecond:F0} | {s.Sender} | {s.GatewayAckP99} | {s.SequencerDelay} | {s.Rounds} | {s.EndToEnd} | {s.GatewayCpuPercent:F0}% | {s.PostgresCpuPercent:F0}% | {s.LoadToolCpuPercent:F0}% | {s.MachineBusyPercent:F0}% / {s.MachineStolenPercent:F0}% | {s.Wal.PerSecond:F0} × {s.Wal.MillisecondsEach:F2} | {s.SequencerBackend.RunPercent:F0}% / {s.SequencerBackend.WaitPercent:F0}% | {(s.Sustainable ? "yes" : "no")} |");
        }

        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture,
            $"Loss check (sync API): {_loss.Expected} messages acknowledged, {_loss.Stored} stored, {_loss.Missing} missing, {_loss.Duplicated} duplicated, {_loss.Unexpected} stored although refused. Subscribers received {_subscriberEvents} events ({SubscriberDeliveriesPerSecond:F0} per second; {_subscriberEvents - _subscriberSseEvents} over WebSockets, {_subscriberSseEvents} over SSE).");
        // Single slow seconds decide a step's p99; listed, they show a pattern such as the host's writeback, 30 s apart
        // (docs/OPERATIONS.md, "The host's writeback").
        SecondFigures[] slow = [.. _seconds.Where(s => s.AckP99 > _settings.P99BoundMilliseconds)];
        string listed = slow.Length == 0 ? "none."
            : string.Join(", ", slow.Take(20).Select(static s => string.Create(CultureInfo.InvariantCulture, $"{s.Second}: {s.AckP99:F0} ms"))) +
              (slow.Length > 20 ? string.Create(CultureInfo.InvariantCulture, $" and {slow.Length - 20} more.") : ".");
        text.AppendLine(CultureInfo.InvariantCulture, $"Seconds with ack p99 over {_settings.P99BoundMilliseconds} ms (from the run's start): {listed}");
        StepFigures? best = _steps.Where(static s => s.Sustainable).MaxBy(static s => s.Rate);
        text.AppendLine(_settings.IsClosedLoop
            ? "Closed loop: each sender waits for its answer, so the rate is what the gateway sustained; no maximum is sought."
            : best is null
            ? string.Create(CultureInfo.InvariantCulture, $"Maximum sustainable rate (ack p99 ≤ {_settings.P99BoundMilliseconds} ms, only 200s): none of the steps.")
            : string.Create(CultureInfo.InvariantCulture,
                $"Maximum sustainable rate (ack p99 ≤ {_settings.P99BoundMilliseconds} ms, only 200s): {best.Rate:F0} POSTs/s, {best.MessagesPerSecond:F0} messages/s; ack {best.Sender}; webhook → event {best.EndToEnd}.{ShortStepNote()}"));
        return text.ToString();
    }

    /// <summary>
    /// The host writes its dirty pages back every 30 s, and on the test machine each such second holds every commit
    /// back (docs/OPERATIONS.md, "The host's writeback"). A step that ends before one can pass at a rate the box does
    /// not sustain: 15,000 POSTs/s held p99 ≤ 50 ms for 10 s and fell 700 ms behind within 30 s (docs/DECISIONS.md 40).
    /// </summary>
    private const int HostWritebackSeconds = 30;

    private string ShortStepNote() => _settings.StepSeconds >= HostWritebackSeconds ? ""
        : string.Create(CultureInfo.InvariantCulture,
            $" Steps shorter than {HostWritebackSeconds} s may end before the host's writeback stall (docs/OPERATIONS.md): hold a rate for {HostWritebackSeconds} s (--step-seconds {HostWritebackSeconds}) before calling it sustained.");

    private string WarmUpNote() => _settings.WarmUpSeconds == 0 ? ""
        : string.Create(CultureInfo.InvariantCulture, $" after a {_settings.WarmUpSeconds} s warm-up at the first step's rate (its own row, counted in no step)");

    public async Task WriteAsync(string directory)
    {
        Directory.CreateDirectory(directory);
        await File.WriteAllTextAsync(Path.Combine(directory, "report.md"), Markdown());
        await File.WriteAllTextAsync(Path.Combine(directory, "report.json"), JsonSerializer.Serialize(new
        {
            settings = _settings,
            steps = _steps,
            max_sustainable_rate = MaxSustainableRate,
            loss = _loss,
            subscriber_events = _subscriberEvents,
            subscriber_sse_events = _subscriberSseEvents,
            seconds = _seconds,
        }, JsonOptions));
        await File.WriteAllTextAsync(Path.Combine(directory, "report.svg"), Svg());
    }

    /// <summary>Two panels over time: acknowledged messages per second; ack p50/p99 and webhook → event p99 in ms.</summary>
    private string Svg()
    {
        const int Width = 900, Panel = 200, Left = 70, Top = 30, Gap = 60;
        int plotWidth = Width - Left - 20;
        int seconds = Math.Max(1, _seconds.Length);
        double maxThroughput = Math.Max(1, _seconds.Max(static s => (double?)s.Messages) ?? 1);
        double maxLatency = Math.Max(1, _seconds.Max(static s => (double?)Math.Max(s.AckP99, s.EndToEndP99)) ?? 1);
        string X(int second) => (Left + (double)second / seconds * plotWidth).ToString("F1", CultureInfo.InvariantCulture);
        string Y(double value, double max, int top) => (top + Panel - value / max * Panel).ToString("F1", CultureInfo.InvariantCulture);
        string Line(Func<SecondFigures, double> value, double max, int top, string color) =>
            $"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{string.Join(' ', _seconds.Select(s => $"{X(s.Second)},{Y(value(s), max, top)}"))}\"/>";

        int latencyTop = Top + Panel + Gap;
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{latencyTop + Panel + 40}\" font-family=\"sans-serif\" font-size=\"12\">");
        svg.Append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
        foreach ((int top, string title, double max) in new[] { (Top, "acknowledged messages per second", maxThroughput), (latencyTop, "latency, ms: ack p50 (blue), ack p99 (red), webhook → event p99 (green)", maxLatency) })
        {
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left}\" y=\"{top - 8}\">{title}</text>");
            svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{Left}\" y=\"{top}\" width=\"{plotWidth}\" height=\"{Panel}\" fill=\"none\" stroke=\"#999\"/>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left - 6}\" y=\"{top + 4}\" text-anchor=\"end\">{max:F0}</text><text x=\"{Left - 6}\" y=\"{top + Panel}\" text-anchor=\"end\">0</text>");
        }

        svg.Append(Line(static s => s.Messages, maxThroughput, Top, "#333"));
        svg.Append(Line(static s => s.AckP50, maxLatency, latencyTop, "#1f77b4"));
        svg.Append(Line(static s => s.AckP99, maxLatency, latencyTop, "#d62728"));
        if (_seconds.Any(static s => s.EndToEndP99 > 0))
        {
            svg.Append(Line(static s => s.EndToEndP99, maxLatency, latencyTop, "#2ca02c"));
        }

        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left + plotWidth / 2}\" y=\"{latencyTop + Panel + 30}\" text-anchor=\"middle\">seconds since the start ({seconds} s)</text>");
        svg.Append("</svg>");
        return svg.ToString();
    }

    private sealed record StepFigures(double Rate, string Label, bool WarmUp, int Requests, int Ok, int Refused, int Other, double MessagesPerSecond, LatencySummary Sender,
        string GatewayAckP99, string SequencerDelay, SequencerRounds Rounds, LatencySummary EndToEnd, double GatewayCpuPercent, double PostgresCpuPercent, double LoadToolCpuPercent, double MachineBusyPercent,
        double MachineStolenPercent, WalFlushes Wal, SequencerBackends.Share SequencerBackend, bool Sustainable);

    private sealed record SecondFigures(int Second, long Messages, int NotOk, double AckP50, double AckP99, double EndToEndP99);
}
