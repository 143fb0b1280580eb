using BenchmarkDotNet.Attributes;
using Memo.Ingest.Storage;
using Memo.Ingest.TestSupport;
using Memo.Ingest.Webhooks;
using Memo.Ingest.Webhooks.Parsing;

namespace Memo.Ingest.Benchmarks;

/// <summary>
/// The acknowledgement's COPY rows for a parsed 100-message webhook, encoded by the gateway into one pooled buffer
/// (<see cref="InboxRow.WriteBinary"/>), as <see cref="InboxAppender"/> sends them through raw binary COPY.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class InboxCopyBenchmarks
{
    private readonly ParsedWebhook _webhook = new();

    [GlobalSetup]
    public void Setup()
    {
        if (WebhookPayloadReader.Parse(RealisticPayloads.Mixed100, _webhook) != WebhookRejectionReason.None)
        {
            throw new InvalidOperationException("The benchmark's webhook did not parse.");
        }
    }

    [Benchmark(Description = "inbox COPY rows, 100 mixed messages")]
    public int EncodeRows()
    {
        using var copy = new BinaryCopyBuffer(_webhook.Count * InboxRow.TypicalBinaryBytes);
        for (int i = 0; i < _webhook.Count; i++)
        {
            InboxRow.WriteBinary(copy, null, _webhook.Arena, in _webhook[i]);
        }

        copy.Finish();
        return copy.Written.Length;
    }
}
