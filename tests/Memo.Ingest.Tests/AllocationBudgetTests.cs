using System.Buffers;
using System.Diagnostics.Metrics;
using System.IO.Pipelines;
using System.Text.Json;
using Memo.Ingest.Configuration;
using Memo.Ingest.Events;
using Memo.Ingest.Ingest;
using Memo.Ingest.Observability;
using Memo.Ingest.Streams;
using Memo.Ingest.TestSupport;
using Memo.Ingest.Webhooks;
using Memo.Ingest.Webhooks.Parsing;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using Xunit;

namespace Memo.Ingest.Tests;

/// <summary>
/// Every hot path stays within the bytes per operation committed in bench/allocation-budget.json. Counted bytes on
/// this thread, not time, so the check is deterministic; timing belongs to bench/.
/// </summary>
public sealed class AllocationBudgetTests
{
    private const int Operations = 200;

    private const int Rounds = 3;

    /// <summary>More calls than the runtime's tier-up threshold (30), so that the measured rounds run tier-1 code.</summary>
    private const int WarmUpOperations = 50;

    private static readonly IReadOnlyDictionary<string, long> Budgets = ReadBudgets();

    public static TheoryData<string> HotPaths() => [.. HotPathFactories.Keys];

    /// <summary>Each hot path: a factory that sets it up once and returns one operation, with plain checks (xunit's
    /// asserts allocate, and would be counted).</summary>
    private static readonly Dictionary<string, Func<Action>> HotPathFactories = new()
    {
        ["verify+parse, typical 1.5 KB webhook"] = () => VerifyAndParse(RealisticPayloads.Typical),
        ["verify+parse, 100 mixed messages"] = () => VerifyAndParse(RealisticPayloads.Mixed100),
        ["parse, 100 mixed messages in 4 KiB segments"] = () =>
        {
            ReadOnlySequence<byte> body = RealisticPayloads.Segmented(RealisticPayloads.Mixed100);
            var webhook = new ParsedWebhook();
            return () =>
            {
                webhook.TryReset();
                Require(WebhookPayloadReader.Parse(body, webhook) == WebhookRejectionReason.None);
            };
        },
        ["inbox COPY rows of 100 mixed messages, per batch"] = () =>
        {
            var webhook = new ParsedWebhook();
            Require(WebhookPayloadReader.Parse(RealisticPayloads.Mixed100, webhook) == WebhookRejectionReason.None);
            return () =>
            {
                using var copy = new Storage.BinaryCopyBuffer(webhook.Count * Storage.InboxRow.TypicalBinaryBytes);
                for (int i = 0; i < webhook.Count; i++)
                {
                    Storage.InboxRow.WriteBinary(copy, null, webhook.Arena, in webhook[i]);
                }

                copy.Finish();
                Require(copy.Written.Length > webhook.Count * 100);
            };
        },
        ["metrics: record a webhook and a batch"] = RecordMetrics,
        ["event frame: read one event of an unfollowed account"] = () =>
        {
            var output = new ArrayBufferWriter<byte>(1024);
            EventFrame.WriteHeader(output, Guid.Empty);
            int lengthAt = EventFrame.BeginEvent(output, "106540352242922", 18231, EventKind.MessageStatus);
            output.Write(new byte[600]);
            EventFrame.EndEvent(output, lengthAt);
            EventFrame.SetCount(output, 1);
            byte[] frame = output.WrittenSpan.ToArray();
            return () =>
            {
                var reader = new EventFrame.Reader(frame);
                Require(reader.TryReadNext(out ReadOnlySpan<byte> account, out _, out _, out ReadOnlySpan<byte> json) && account.Length == 15 && json.Length == 600);
            };
        },
        ["MessagePack form of one event, shared by its MessagePack clients"] = () =>
        {
            byte[] json = System.Text.Encoding.UTF8.GetBytes(
                """{"type":"event","account":"106540352242922","seq":18231,"kind":"message.created","data":{"seq":18231,"wamid":"wamid.HBgLNDkxNTExMjM0NTY3OBUCABIYFDNBMDhGMTQ0QkIyQzQ2QTM2MjQ2AA==","direction":"inbound","from":"4915112345678","to":null,"timestamp":1700000000,"type":"text","text":"Hello! Is my order on its way?","payload":{"from":"4915112345678","id":"wamid.HBgL","timestamp":"1700000000","text":{"body":"Hello! Is my order on its way?"},"type":"text"}}}""");
            return () => Require(MessagePackTranscoder.FromJson(json).Length > 0);
        },
        ["SSE frame for one event, per connection"] = () =>
        {
            // Kestrel's response pipe pools its segments; a Pipe does the same, where a stream adapter would not.
            var pipe = new Pipe();
            var context = new DefaultHttpContext();
            context.Features.Set<IHttpResponseBodyFeature>(new PipeResponseBody(pipe.Writer));
            var sse = new SseTransport(context);
            var streamEvent = new StreamEvent("106540352242922", 18231, EventKind.MessageCreated, new byte[600]);
            var cursors = new Dictionary<string, long> { ["106540352242922"] = 18231 };
            return () =>
            {
                Require(sse.SendEventAsync(streamEvent, cursors, CancellationToken.None).IsCompletedSuccessfully);
                Require(sse.FlushAsync(CancellationToken.None).IsCompletedSuccessfully);
                Require(pipe.Reader.TryRead(out ReadResult sent));
                pipe.Reader.AdvanceTo(sent.Buffer.End);
            };
        },
        ["fan-out: offer one event to a follower"] = () =>
        {
            ServiceProvider services = new ServiceCollection().AddMetrics().BuildServiceProvider();
            var metrics = new IngestMetrics(services.GetRequiredService<IMeterFactory>());
            StreamEvent[] events = [new StreamEvent("106540352242922", 1, EventKind.MessageCreated, new byte[600])];
            var session = new StreamSession(new Dictionary<string, long> { ["106540352242922"] = 0 }, new StreamOptions { QueueCapacity = int.MaxValue }, metrics, "sse",
                DateTimeOffset.MaxValue, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
            return () => session.Offer(events);
        },
    };

    private static bool GatewayIsOptimized =>
        typeof(SseTransport).Assembly.GetCustomAttributes(typeof(System.Diagnostics.DebuggableAttribute), false)
            is not [System.Diagnostics.DebuggableAttribute { IsJITOptimizerDisabled: true }];

    [Theory]
    [MemberData(nameof(HotPaths))]
    public void HotPath_StaysWithinItsAllocationBudget(string path)
    {
        // Budgets are bytes of optimized code: in a Debug build the compiler makes async state machines classes. Say
        // so rather than pass without measuring.
        Assert.True(GatewayIsOptimized, "Allocation budgets are measured on optimized builds: run dotnet test -c Release (scripts/test.sh does).");

        Action operation = HotPathFactories[path]();
        for (int i = 0; i < WarmUpOperations; i++)
        {
            operation(); // warm up: grow pooled buffers, JIT through the tiers, create metric points
        }

        // The least of a few rounds: an allocation made once by the runtime on this thread (a tier-up, a lazily built
        // cache; seen on CI as 4.4 KB in one round) is not the path's, while a per-operation allocation shows in every round.
        double perOperation = double.MaxValue;
        for (int round = 0; round < Rounds; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < Operations; i++)
            {
                operation();
            }

            perOperation = Math.Min(perOperation, (GC.GetAllocatedBytesForCurrentThread() - before) / (double)Operations);
        }

        Assert.True(perOperation <= Budgets[path], $"{path}: {perOperation:F1} B per operation, budget {Budgets[path]} B (bench/allocation-budget.json)");
    }

    [Fact]
    public void EveryHotPathHasABudget_AndEveryBudgetAHotPath() =>
        Assert.Equal(HotPathFactories.Keys.Order(), Budgets.Keys.Order());

    private static Action VerifyAndParse(byte[] body)
    {
        string header = WebhookSigner.Sign(body, RealisticPayloads.Secret);
        var verifier = new WebhookSignatureVerifier(["previous-secret", RealisticPayloads.Secret]);
        var webhook = new ParsedWebhook();
        return () =>
        {
            webhook.TryReset();
            Require(verifier.Verify(body, header) == WebhookRejectionReason.None && WebhookPayloadReader.Parse(body, webhook) == WebhookRejectionReason.None);
        };
    }

    private static Action RecordMetrics()
    {
        ServiceProvider services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new IngestMetrics(services.GetRequiredService<IMeterFactory>());
        MeterProvider provider = Sdk.CreateMeterProviderBuilder()
            .AddMeter(IngestMetrics.MeterName)
            .AddPrometheusExporter()
            .Build();
        var summary = new BatchSummary { MessagesCreated = 3, StatusEvents = 1, ContactsUpdated = 1, ConversationsUpdated = 1 };
        return () =>
        {
            GC.KeepAlive(provider);
            metrics.WebhookAnswered(200, WebhookRejectionReason.None, TimeSpan.FromMilliseconds(3));
            metrics.WebhookAnswered(401, WebhookRejectionReason.SignatureMismatch, TimeSpan.FromMilliseconds(1));
            metrics.WebhookAnswered(503, WebhookRejectionReason.None, TimeSpan.FromMilliseconds(1));
            metrics.BatchAppended(12, TimeSpan.FromMilliseconds(4));
            metrics.SequencerRound(14, summary, TimeSpan.FromMilliseconds(4), TimeSpan.FromMilliseconds(2));
            metrics.SequencerRound(50, summary, TimeSpan.FromMilliseconds(9), TimeSpan.FromMilliseconds(900), history: true);
            metrics.DuplicatesScreened(5, 1);
            metrics.RedisScreened(TimeSpan.FromMilliseconds(0.3));
            metrics.LiveEventsDispatched(3);
        };
    }

    /// <summary>A response body that is a plain pipe, read by the test as a client would.</summary>
    private sealed class PipeResponseBody(PipeWriter writer) : IHttpResponseBodyFeature
    {
        public Stream Stream => throw new NotSupportedException();

        public PipeWriter Writer => writer;

        public void DisableBuffering()
        {
        }

        public Task StartAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

        public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task CompleteAsync() => writer.CompleteAsync().AsTask();
    }

    private static void Require(bool condition)
    {
        if (!condition)
        {
            throw new InvalidOperationException("The hot path did not do its work.");
        }
    }

    private static Dictionary<string, long> ReadBudgets()
    {
        using JsonDocument budget = JsonDocument.Parse(File.ReadAllText(Path.Combine(RepositoryScript.Root, "bench", "allocation-budget.json")));
        return budget.RootElement.GetProperty("budgets").EnumerateObject().ToDictionary(static p => p.Name, static p => p.Value.GetInt64());
    }
}
