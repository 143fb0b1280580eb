using System.Buffers;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using Memo.Ingest.TestSupport;
using Memo.Ingest.Webhooks;
using Memo.Ingest.Webhooks.Parsing;

namespace Memo.Ingest.Benchmarks;

/// <summary>
/// Parsing into a pooled, reused <see cref="ParsedWebhook"/> (as the gateway does), whole and in 4 KiB segments,
/// against the floor: a <see cref="Utf8JsonReader"/> that only reads every token of the same body. Plus the whole
/// per-request CPU path for a typical webhook: verify, then parse.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class ParsingBenchmarks
{
    private readonly ParsedWebhook _webhook = new();
    private readonly WebhookSignatureVerifier _verifier = new([RealisticPayloads.Secret]);
    private byte[] _body = [];
    private ReadOnlySequence<byte> _segmented;
    private string _header = "";

    [Params("1 message (1.5 KB)", "100 mixed")]
    public string Payload { get; set; } = "1 message (1.5 KB)";

    [GlobalSetup]
    public void Setup()
    {
        _body = Payload == "100 mixed" ? RealisticPayloads.Mixed100 : RealisticPayloads.Typical;
        _segmented = RealisticPayloads.Segmented(_body);
        _header = RealisticPayloads.SignatureOf(_body);
        Parse(); // grow the pooled buffers once, as a warm pool has
    }

    [Benchmark(Baseline = true, Description = "Utf8JsonReader, every token (floor)")]
    public int ReadEveryToken()
    {
        var reader = new Utf8JsonReader(_body);
        int tokens = 0;
        while (reader.Read())
        {
            tokens++;
        }

        return tokens;
    }

    [Benchmark(Description = "parse, whole buffer")]
    public WebhookRejectionReason Parse()
    {
        _webhook.TryReset();
        return WebhookPayloadReader.Parse(_body, _webhook);
    }

    [Benchmark(Description = "parse, 4 KiB segments")]
    public WebhookRejectionReason ParseSegmented()
    {
        _webhook.TryReset();
        return WebhookPayloadReader.Parse(_segmented, _webhook);
    }

    [Benchmark(Description = "verify + parse")]
    public WebhookRejectionReason VerifyAndParse()
    {
        _webhook.TryReset();
        WebhookRejectionReason reason = _verifier.Verify(_body, _header);
        return reason != WebhookRejectionReason.None ? reason : WebhookPayloadReader.Parse(_body, _webhook);
    }
}
