using System.Diagnostics.Metrics;
using BenchmarkDotNet.Attributes;
using Memo.Ingest.Ingest;
using Memo.Ingest.Observability;
using Memo.Ingest.Webhooks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Metrics;

namespace Memo.Ingest.Benchmarks;

/// <summary>
/// What metrics cost: recording on the webhook and commit paths (must allocate nothing), and one scrape of the
/// gateway's instruments plus the runtime's, as /metrics serves them (OpenTelemetry.Exporter.Prometheus.AspNetCore's
/// middleware, configured as the gateway configures it).
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class MetricsBenchmarks
{
    private ServiceProvider _services = null!;
    private MeterProvider _provider = null!;
    private IngestMetrics _metrics = null!;
    private RequestDelegate _scrape = null!;
    private readonly MemoryStream _body = new();
    private BatchSummary _summary;

    [GlobalSetup]
    public void Setup()
    {
        _services = new ServiceCollection().AddMetrics().AddLogging()
            .AddOpenTelemetry().WithMetrics(static metrics => metrics
                .AddMeter(IngestMetrics.MeterName, "System.Runtime")
                .AddPrometheusExporter(static prometheus => prometheus.ScrapeResponseCacheDurationMilliseconds = 0))
            .Services.BuildServiceProvider();
        _provider = _services.GetRequiredService<MeterProvider>();
        _metrics = new IngestMetrics(_services.GetRequiredService<IMeterFactory>());
        _metrics.ObserveQueue(static () => 3);
        _metrics.ObserveRedis(static () => 1);
        var app = new ApplicationBuilder(_services);
        app.UseOpenTelemetryPrometheusScrapingEndpoint();
        _scrape = app.Build();
        _summary = new BatchSummary { MessagesCreated = 40, StatusEvents = 10, ContactsUpdated = 5, ConversationsUpdated = 20 };

        // Every series the gateway produces in normal running, so the scrape renders a realistic page.
        foreach (WebhookRejectionReason reason in Enum.GetValues<WebhookRejectionReason>())
        {
            _metrics.WebhookAnswered(reason == WebhookRejectionReason.None ? 200 : 400, reason, TimeSpan.FromMilliseconds(2));
        }

        _metrics.BatchAppended(20, TimeSpan.FromMilliseconds(3));
        _metrics.SequencerRound(500, _summary, TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(5));
        _metrics.RedisScreened(TimeSpan.FromMilliseconds(0.2));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _services.Dispose();
    }

    [Benchmark(Description = "record: webhook answered 200 (counter with 2 tags + histogram)")]
    public void RecordWebhookAccepted() => _metrics.WebhookAnswered(200, WebhookRejectionReason.None, TimeSpan.FromMilliseconds(2.5));

    [Benchmark(Description = "record: sequencer round (3 histograms + 4 tagged counter adds)")]
    public void RecordSequencerRound() => _metrics.SequencerRound(500, _summary, TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(5));

    [Benchmark(Description = "scrape: collect and render /metrics")]
    public async Task<long> Scrape()
    {
        _body.SetLength(0);
        var context = new DefaultHttpContext();
        context.Request.Path = "/metrics";
        context.Response.Body = _body;
        await _scrape(context);
        return _body.Length;
    }
}
