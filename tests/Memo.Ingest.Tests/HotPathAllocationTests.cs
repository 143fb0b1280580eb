using System.Diagnostics.Metrics;
using System.Text;
using Memo.Ingest.Ingest;
using Memo.Ingest.Observability;
using Memo.Ingest.TestSupport;
using Memo.Ingest.Webhooks;
using Memo.Ingest.Webhooks.Parsing;
using Memo.Metrics.Prometheus;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using Xunit;

namespace Memo.Ingest.Tests;

/// <summary>
/// Verifying and parsing a webhook into a reused (pooled) instance allocates nothing: counted bytes, not time, so the
/// check is deterministic. Timing belongs to bench/.
/// </summary>
public sealed class HotPathAllocationTests
{
    [Fact]
    public void VerifyAndParse_WarmPooledInstance_AllocatesZeroBytes()
    {
        var messages = WebhookPayloads.MessageOfEveryType("wamid.a", "4915111", 1700000000).Select(static m => m.Json);
        byte[] body = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope("PN1", messages: messages,
            contacts: [WebhookPayloads.Contact("4915111", "J\\u00f6rg")],
            statuses: [WebhookPayloads.Status("wamid.o", "read", 1700000001, "4915111", withPricing: true)]));
        string header = WebhookSigner.Sign(body, "s");
        var verifier = new WebhookSignatureVerifier(["other", "s"]);
        var webhook = new ParsedWebhook();

        // Warm up: grow the pooled buffers and JIT everything once.
        for (int i = 0; i < 3; i++)
        {
            RunOnce(verifier, webhook, body, header);
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            RunOnce(verifier, webhook, body, header);
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
    }

    [Fact]
    public void RecordingMetrics_WithTheOpenTelemetryExporterListening_AllocatesZeroBytes()
    {
        using ServiceProvider services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new IngestMetrics(services.GetRequiredService<IMeterFactory>());
        using MeterProvider provider = Sdk.CreateMeterProviderBuilder()
            .AddMeter(IngestMetrics.MeterName)
            .AddReader(new BaseExportingMetricReader(new PrometheusTextExporter()) { TemporalityPreference = MetricReaderTemporalityPreference.Cumulative })
            .Build();
        var summary = new BatchSummary { MessagesCreated = 3, StatusEvents = 1, ContactsUpdated = 1, ConversationsUpdated = 1 };

        // Warm up: the SDK creates each series' metric point on its first measurement.
        for (int i = 0; i < 3; i++)
        {
            RecordOnce(metrics, summary);
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            RecordOnce(metrics, summary);
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
    }

    private static void RecordOnce(IngestMetrics metrics, BatchSummary summary)
    {
        metrics.WebhookAnswered(200, WebhookRejectionReason.None, TimeSpan.FromMilliseconds(3));
        metrics.WebhookAnswered(401, WebhookRejectionReason.SignatureMismatch, TimeSpan.FromMilliseconds(1));
        metrics.WebhookAnswered(503, WebhookRejectionReason.None, TimeSpan.FromMilliseconds(1));
        metrics.BatchCommitted(12, summary, TimeSpan.FromMilliseconds(4));
        metrics.DuplicatesScreened(5, 1);
        metrics.RedisScreened(TimeSpan.FromMilliseconds(0.3));
        metrics.BusEventDelivered();
    }

    private static void RunOnce(WebhookSignatureVerifier verifier, ParsedWebhook webhook, byte[] body, string header)
    {
        // Plain checks: xunit's Assert.Equal allocates, which would be counted here.
        webhook.TryReset();
        if (verifier.Verify(body, header) != WebhookRejectionReason.None || WebhookPayloadReader.Parse(body, webhook) != WebhookRejectionReason.None)
        {
            throw new InvalidOperationException("The payload should verify and parse.");
        }
    }
}
