using System.Buffers.Text;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Memo.Ingest.Load.OpenModel;

/// <summary>
/// Every request of an open-model run as the bytes of an HTTP/1.1 POST, made before the run into a few large buffers,
/// so that the sender spends its CPU on its sockets alone: made during the run, each body (JSON built from strings,
/// UTF-8 encoded, signed) and its <see cref="HttpRequestMessage"/> cost the load tool more CPU than the gateway spends
/// acknowledging it, on the same two cores (docs/PERFORMANCE.md). A body that carries its send time (<c>t=µs;</c> in a
/// text message, which subscribers read) is made with <see cref="StampPlaceholder"/> there; at send time
/// <see cref="Prepare"/> writes the intended send time over it and signs the body (one HMAC of about a kilobyte).
/// </summary>
internal sealed class PreparedRequests
{
    /// <summary>What a body factory writes where the send time goes: 15 digits, the width of every stamp.</summary>
    public const long StampPlaceholder = 999_999_999_999_999;

    /// <summary>
    /// What a body factory writes instead when nothing will read the send time (a run without subscribers): a fixed
    /// stamp of the same width, so that the body is signed once, before the run. Stamping and signing at send time
    /// were 12 % of the load tool's samples at 4,000 POSTs/s (HMAC-SHA256 of each body, docs/PERFORMANCE.md).
    /// </summary>
    public const long UnreadStamp = 100_000_000_000_000;

    private const int StampDigits = 15;
    private const int SignatureHexDigits = 64;
    private const int ChunkBytes = 64 << 20;
    private const int BuildBatch = 16_384;

    private static readonly byte[] Placeholder = Encoding.ASCII.GetBytes(StampPlaceholder.ToString(CultureInfo.InvariantCulture));

    private readonly byte[] _key;
    private readonly int _signatureOffset;
    private readonly List<byte[]> _chunks = [];
    private readonly Layout[] _requests;
    private readonly List<int> _stamps = [];
    private int _chunkUsed;

    private PreparedRequests(long count, string secret, int signatureOffset)
    {
        _key = Encoding.UTF8.GetBytes(secret);
        _signatureOffset = signatureOffset;
        _requests = new Layout[count];
    }

    public long Count => _requests.Length;

    /// <summary>Makes requests 0 to <paramref name="count"/> − 1 (<paramref name="body"/> of each), signed with <paramref name="secret"/>.</summary>
    public static PreparedRequests Make(long count, Func<long, byte[]> body, string secret, Uri gateway, string path)
    {
        string head = $"POST {path} HTTP/1.1\r\nHost: {gateway.Authority}\r\nContent-Type: application/json\r\nX-Hub-Signature-256: sha256=";
        var prepared = new PreparedRequests(count, secret, Encoding.ASCII.GetByteCount(head));
        byte[] headBytes = Encoding.ASCII.GetBytes(head);
        var bodies = new byte[BuildBatch][];
        for (long first = 0; first < count; first += BuildBatch)
        {
            int batch = (int)Math.Min(BuildBatch, count - first);
            Parallel.For(0, batch, i => bodies[i] = body(first + i));
            for (int i = 0; i < batch; i++)
            {
                prepared.Append(first + i, headBytes, bodies[i]);
            }
        }

        return prepared;
    }

    private void Append(long index, byte[] head, byte[] body)
    {
        // Signature, then Content-Length: the signature's slot is at the same place in every request.
        byte[] tail = Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"\r\nContent-Length: {body.Length}\r\n\r\n"));
        int length = head.Length + SignatureHexDigits + tail.Length + body.Length;
        if (_chunks.Count == 0 || _chunkUsed + length > _chunks[^1].Length)
        {
            _chunks.Add(new byte[Math.Max(ChunkBytes, length)]);
            _chunkUsed = 0;
        }

        Span<byte> request = _chunks[^1].AsSpan(_chunkUsed, length);
        head.CopyTo(request);
        tail.CopyTo(request[(head.Length + SignatureHexDigits)..]);
        int bodyOffset = length - body.Length;
        body.CopyTo(request[bodyOffset..]);

        int firstStamp = _stamps.Count;
        for (int at = body.AsSpan().IndexOf(Placeholder); at >= 0;)
        {
            _stamps.Add(bodyOffset + at);
            int next = body.AsSpan(at + Placeholder.Length).IndexOf(Placeholder);
            at = next < 0 ? -1 : at + Placeholder.Length + next;
        }

        _requests[index] = new Layout(_chunks.Count - 1, _chunkUsed, length, bodyOffset, firstStamp, _stamps.Count - firstStamp);
        if (_stamps.Count == firstStamp)
        {
            Sign(request, bodyOffset);
        }

        _chunkUsed += length;
    }

    /// <summary>
    /// The bytes of request <paramref name="index"/>, its send time stamped and signed if its body carries one. Each
    /// request is sent once: stamping writes into the prepared bytes. Safe to call for different requests at once.
    /// </summary>
    public ReadOnlyMemory<byte> Prepare(long index, long sentMicroseconds)
    {
        Layout layout = _requests[index];
        Memory<byte> request = _chunks[layout.Chunk].AsMemory(layout.Offset, layout.Length);
        if (layout.StampCount > 0)
        {
            Span<byte> bytes = request.Span;
            Span<byte> digits = stackalloc byte[StampDigits];
            if (!Utf8Formatter.TryFormat(sentMicroseconds, digits, out _, new System.Buffers.StandardFormat('D', StampDigits)))
            {
                throw new ArgumentOutOfRangeException(nameof(sentMicroseconds));
            }

            for (int s = 0; s < layout.StampCount; s++)
            {
                digits.CopyTo(bytes[_stamps[layout.FirstStamp + s]..]);
            }

            Sign(bytes, layout.BodyOffset);
        }

        return request;
    }

    private void Sign(Span<byte> request, int bodyOffset)
    {
        Span<byte> hash = stackalloc byte[32];
        HMACSHA256.HashData(_key, request[bodyOffset..], hash);
        Span<byte> hex = request.Slice(_signatureOffset, SignatureHexDigits);
        for (int i = 0; i < hash.Length; i++)
        {
            hex[2 * i] = (byte)"0123456789abcdef"[hash[i] >> 4];
            hex[(2 * i) + 1] = (byte)"0123456789abcdef"[hash[i] & 0xF];
        }
    }

    private readonly record struct Layout(int Chunk, int Offset, int Length, int BodyOffset, int FirstStamp, int StampCount);
}
