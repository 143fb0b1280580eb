using System.Diagnostics.Metrics;
using System.Text;
using Memo.Metrics.Prometheus;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using Xunit;

namespace Memo.Ingest.Tests;

public sealed class PrometheusTextExporterTests
{
    [Theory]
    [InlineData("memo.webhook.requests", "{request}", true, "memo_webhook_requests_total")]
    [InlineData("memo.ingest.commit.duration", "s", false, "memo_ingest_commit_duration_seconds")]
    [InlineData("dotnet.process.memory.working_set", "By", false, "dotnet_process_memory_working_set_bytes")]
    [InlineData("dotnet.gc.pause.time", "s", true, "dotnet_gc_pause_time_seconds_total")]
    [InlineData("net.io", "By/s", false, "net_io_bytes_per_second")]
    [InlineData("ratio", "1", false, "ratio")]
    [InlineData("9lives-and..dots", null, false, "_9lives_and_dots")]
    [InlineData("already_total", "", true, "already_total")]
    [InlineData("latency_seconds", "s", false, "latency_seconds")]
    public void Names_follow_the_opentelemetry_prometheus_conventions(string name, string? unit, bool counter, string expected)
    {
        Assert.Equal(expected, PrometheusNames.Build(name, unit, counter));
    }

    [Fact]
    public void Renders_counters_gauges_and_cumulative_histograms_with_escaped_labels()
    {
        string meterName = "Test.Prometheus." + Guid.NewGuid().ToString("N");
        using var meter = new Meter(meterName);
        var exporter = new PrometheusTextExporter();
        using MeterProvider provider = Sdk.CreateMeterProviderBuilder()
            .AddMeter(meterName)
            .AddReader(new BaseExportingMetricReader(exporter) { TemporalityPreference = MetricReaderTemporalityPreference.Cumulative })
            .Build();

        Counter<long> requests = meter.CreateCounter<long>("test.requests", "{request}", "Requests.\nSecond \\ line");
        UpDownCounter<long> open = meter.CreateUpDownCounter<long>("test.open", "{connection}", "Open connections.");
        Histogram<double> latency = meter.CreateHistogram("test.latency", "s", "Latency.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.1, 1] });
        requests.Add(2, new KeyValuePair<string, object?>("path", "a\"b\\c\nd"), new KeyValuePair<string, object?>("http.status", 200));
        open.Add(5);
        open.Add(-2);
        latency.Record(0.05);
        latency.Record(0.5);
        latency.Record(3);

        string text = "";
        Assert.True(exporter.Scrape(0, (bytes, _) => text = Encoding.UTF8.GetString(bytes.Span)));

        Assert.Equal(
            "# HELP test_requests_total Requests.\\nSecond \\\\ line\n" +
            "# TYPE test_requests_total counter\n" +
            "test_requests_total{http_status=\"200\",path=\"a\\\"b\\\\c\\nd\"} 2\n" +
            "# HELP test_open Open connections.\n" +
            "# TYPE test_open gauge\n" +
            "test_open 3\n" +
            "# HELP test_latency_seconds Latency.\n" +
            "# TYPE test_latency_seconds histogram\n" +
            "test_latency_seconds_bucket{le=\"0.1\"} 1\n" +
            "test_latency_seconds_bucket{le=\"1\"} 2\n" +
            "test_latency_seconds_bucket{le=\"+Inf\"} 3\n" +
            "test_latency_seconds_sum 3.55\n" +
            "test_latency_seconds_count 3\n",
            text);
    }

    [Fact]
    public void Without_a_meter_provider_a_scrape_reports_failure()
    {
        var exporter = new PrometheusTextExporter();
        Assert.False(exporter.Scrape(0, static (_, _) => { }));
    }
}
