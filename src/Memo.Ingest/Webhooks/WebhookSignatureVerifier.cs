using System.Buffers;
using System.Security.Cryptography;
using System.Text;

namespace Memo.Ingest.Webhooks;

/// <summary>
/// Checks <c>X-Hub-Signature-256: sha256=&lt;hex&gt;</c>: HMAC-SHA256 of the exact raw body bytes keyed with the Meta
/// app secret (developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/create-webhook-endpoint).
/// Several secrets are accepted so a secret can be rotated, and one URL may serve several Meta apps. The digest
/// comparison is constant time; it never re-serialises the JSON, because Meta signs the bytes it sent.
/// </summary>
internal sealed class WebhookSignatureVerifier
{
    private const int DigestLength = 32;
    private static ReadOnlySpan<char> Prefix => "sha256=";

    private readonly byte[][] _secrets;
    private readonly bool _acceptUnsigned;
    private readonly ThreadLocal<IncrementalHash[]> _keyed;
    private int _lastMatched;

    /// <param name="acceptUnsigned">Development only, and only when no secret is configured: every body passes.
    /// Empty secrets are dropped, so a blank entry can never make an HMAC with an empty key valid.</param>
    public WebhookSignatureVerifier(IEnumerable<string> appSecrets, bool acceptUnsigned = false)
    {
        _secrets = appSecrets.Where(static s => !string.IsNullOrEmpty(s)).Select(Encoding.UTF8.GetBytes).ToArray();
        _acceptUnsigned = acceptUnsigned && _secrets.Length == 0;
        _keyed = new ThreadLocal<IncrementalHash[]>(() => [.. _secrets.Select(static secret => IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, secret))]);
    }

    public bool HasSecrets => _secrets.Length > 0;

    public WebhookRejectionReason Verify(ReadOnlySpan<byte> body, ReadOnlySpan<char> signatureHeader)
    {
        if (_acceptUnsigned)
        {
            return WebhookRejectionReason.None;
        }

        if (!TryDecode(signatureHeader, out Digest expected, out WebhookRejectionReason reason))
        {
            return reason;
        }

        IncrementalHash[] keyed = _keyed.Value!;
        int first = Volatile.Read(ref _lastMatched);
        for (int i = 0; i < keyed.Length; i++)
        {
            int index = (first + i) % keyed.Length;
            keyed[index].AppendData(body);
            if (Matches(keyed[index], index, expected))
            {
                return WebhookRejectionReason.None;
            }
        }

        return WebhookRejectionReason.SignatureMismatch;
    }

    /// <summary>The same check over a body held in several segments.</summary>
    public WebhookRejectionReason Verify(in ReadOnlySequence<byte> body, ReadOnlySpan<char> signatureHeader)
    {
        if (_acceptUnsigned)
        {
            return WebhookRejectionReason.None;
        }

        if (body.IsSingleSegment)
        {
            return Verify(body.FirstSpan, signatureHeader);
        }

        if (!TryDecode(signatureHeader, out Digest expected, out WebhookRejectionReason reason))
        {
            return reason;
        }

        IncrementalHash[] keyed = _keyed.Value!;
        int first = Volatile.Read(ref _lastMatched);
        for (int i = 0; i < keyed.Length; i++)
        {
            int index = (first + i) % keyed.Length;
            foreach (ReadOnlyMemory<byte> segment in body)
            {
                keyed[index].AppendData(segment.Span);
            }

            if (Matches(keyed[index], index, expected))
            {
                return WebhookRejectionReason.None;
            }
        }

        return WebhookRejectionReason.SignatureMismatch;
    }

    /// <summary>
    /// Finishes one secret's HMAC of the body and compares it in constant time. Each thread keeps every secret's keyed
    /// state (<see cref="_keyed"/>), so a check hashes only the body; the secret that matched last is tried first, so
    /// a rotation does not double the cost of every check. Which configured secret matched is not secret.
    /// </summary>
    private bool Matches(IncrementalHash hmac, int index, in Digest expected)
    {
        Span<byte> actual = stackalloc byte[DigestLength];
        hmac.GetHashAndReset(actual);
        if (!CryptographicOperations.FixedTimeEquals(actual, expected))
        {
            return false;
        }

        Volatile.Write(ref _lastMatched, index);
        return true;
    }

    private static bool TryDecode(ReadOnlySpan<char> header, out Digest digest, out WebhookRejectionReason reason)
    {
        digest = default;
        if (header.IsEmpty)
        {
            reason = WebhookRejectionReason.MissingSignature;
            return false;
        }

        header = header.Trim();
        // Meta sends lowercase hex; uppercase is accepted too, since hex case carries no meaning.
        if (!header.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase) ||
            header.Length != Prefix.Length + (DigestLength * 2) ||
            Convert.FromHexString(header[Prefix.Length..], digest, out _, out int written) != OperationStatus.Done ||
            written != DigestLength)
        {
            reason = WebhookRejectionReason.MalformedSignature;
            return false;
        }

        reason = WebhookRejectionReason.None;
        return true;
    }

    /// <summary>32 bytes on the stack, so decoding the header allocates nothing.</summary>
    [System.Runtime.CompilerServices.InlineArray(DigestLength)]
    private struct Digest
    {
        private byte _element0;
    }
}
