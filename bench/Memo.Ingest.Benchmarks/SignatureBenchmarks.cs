using System.Security.Cryptography;
using System.Text;
using BenchmarkDotNet.Attributes;
using Memo.Ingest.TestSupport;
using Memo.Ingest.Webhooks;

namespace Memo.Ingest.Benchmarks;

/// <summary>
/// X-Hub-Signature-256 checking: our verifier (header decode, HMAC with each secret, constant-time compare) against
/// a one-shot HMAC-SHA256 of the same body, which sets the key up on every call. Two secrets configured, the matching
/// one second in the list (a rotation); the verifier keeps each secret's keyed state per thread and tries the secret
/// that matched last first, so it beats the one-shot call.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class SignatureBenchmarks
{
    private readonly byte[] _key = Encoding.UTF8.GetBytes(RealisticPayloads.Secret);
    private readonly WebhookSignatureVerifier _verifier = new(["previous-secret", RealisticPayloads.Secret]);
    private byte[] _body = [];
    private string _header = "";

    [Params("1.5 KB", "1 MB")]
    public string Body { get; set; } = "1.5 KB";

    [GlobalSetup]
    public void Setup()
    {
        _body = Body == "1 MB" ? RealisticPayloads.OneMegabyte : RealisticPayloads.Typical;
        _header = RealisticPayloads.SignatureOf(_body);
    }

    [Benchmark(Baseline = true, Description = "one-shot HMAC-SHA256 (key set up per call)")]
    public byte[] BareHmac() => HMACSHA256.HashData(_key, _body);

    [Benchmark(Description = "verify, rotation: second secret matches")]
    public WebhookRejectionReason Verify() => _verifier.Verify(_body, _header);
}
