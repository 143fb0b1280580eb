using System.Text;
using Memo.Ingest.TestSupport;
using Memo.Ingest.Webhooks;
using Xunit;

namespace Memo.Ingest.Tests;

public sealed class WebhookSignatureVerifierTests
{
    private static readonly byte[] s_body = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope("PN1", messages: [WebhookPayloads.TextMessage("w", "1", 1, "h\\u00e9")]));
    private readonly WebhookSignatureVerifier _verifier = new(["old-secret", "new-secret"]);

    [Theory]
    [InlineData("old-secret")]
    [InlineData("new-secret")]
    public void Verify_AnyConfiguredSecret_Accepted(string secret)
    {
        Assert.Equal(WebhookRejectionReason.None, _verifier.Verify(s_body, WebhookSigner.Sign(s_body, secret)));
    }

    [Fact]
    public void Verify_UppercaseHex_Accepted()
    {
        string header = "sha256=" + WebhookSigner.Sign(s_body, "new-secret")["sha256=".Length..].ToUpperInvariant();
        Assert.Equal(WebhookRejectionReason.None, _verifier.Verify(s_body, header));
    }

    [Fact]
    public void Verify_UnknownSecret_Mismatch()
    {
        Assert.Equal(WebhookRejectionReason.SignatureMismatch, _verifier.Verify(s_body, WebhookSigner.Sign(s_body, "other")));
    }

    [Fact]
    public void Verify_BodyChangedByOneByte_Mismatch()
    {
        byte[] tampered = (byte[])s_body.Clone();
        tampered[^3] ^= 1;
        Assert.Equal(WebhookRejectionReason.SignatureMismatch, _verifier.Verify(tampered, WebhookSigner.Sign(s_body, "new-secret")));
    }

    [Fact]
    public void Verify_ReserializedJson_Mismatch()
    {
        // Meta signs the escaped bytes it sent; the same JSON with the escape decoded is a different body.
        byte[] reserialized = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(s_body).Replace("\\u00e9", "é", StringComparison.Ordinal));
        Assert.Equal(WebhookRejectionReason.SignatureMismatch, _verifier.Verify(reserialized, WebhookSigner.Sign(s_body, "new-secret")));
    }

    [Theory]
    [InlineData("", WebhookRejectionReason.MissingSignature)]
    [InlineData("sha256=", WebhookRejectionReason.MalformedSignature)]
    [InlineData("sha1=0123456789abcdef0123456789abcdef01234567", WebhookRejectionReason.MalformedSignature)]
    [InlineData("sha256=zz23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", WebhookRejectionReason.MalformedSignature)]
    [InlineData("sha256=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef00", WebhookRejectionReason.MalformedSignature)]
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", WebhookRejectionReason.MalformedSignature)]
    public void Verify_BadHeader_Rejected(string header, WebhookRejectionReason expected)
    {
        Assert.Equal(expected, _verifier.Verify(s_body, header));
    }

    [Fact]
    public void Verify_SegmentedBody_SameAsContiguous()
    {
        string header = WebhookSigner.Sign(s_body, "old-secret");
        foreach ((string name, var sequence) in Segments.Variants(s_body))
        {
            Assert.True(_verifier.Verify(sequence, header) == WebhookRejectionReason.None, name);
        }
    }
}
