using System.Security.Cryptography;
using System.Text;

namespace Memo.Ingest.TestSupport;

/// <summary>
/// One malformed or hostile webhook POST and the answer it must get: the status and the error code in the body.
/// By default the body is signed correctly, so that only the named defect is wrong.
/// </summary>
public sealed record HostileInput(string Name, byte[] Body, int ExpectedStatus, string ExpectedCode)
{
    public string ContentType { get; init; } = "application/json";

    public string? ContentEncoding { get; init; }

    public bool Chunked { get; init; }

    public bool Signed { get; init; } = true;

    /// <summary>A literal X-Hub-Signature-256 value instead of a computed one.</summary>
    public string? SignatureHeader { get; init; }

    /// <summary>Bytes to sign instead of the body (a valid signature of something else).</summary>
    public byte[]? SignOver { get; init; }

    /// <summary>A secret to sign with instead of the gateway's.</summary>
    public string? SecretOverride { get; init; }

    public override string ToString() => Name;

    public HttpRequestMessage ToRequest(string secret)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/webhooks/whatsapp") { Content = new ByteArrayContent(Body) };
        if (ContentType.Length > 0)
        {
            request.Content.Headers.TryAddWithoutValidation("Content-Type", ContentType);
        }

        if (ContentEncoding is not null)
        {
            request.Content.Headers.ContentEncoding.Add(ContentEncoding);
        }

        if (Chunked)
        {
            request.Headers.TransferEncodingChunked = true;
        }

        string? signature = SignatureHeader ?? (Signed ? WebhookSigner.Sign(SignOver ?? Body, SecretOverride ?? secret) : null);
        if (signature is not null)
        {
            request.Headers.TryAddWithoutValidation("X-Hub-Signature-256", signature);
        }

        return request;
    }

    /// <summary>
    /// The corpus: every way a body, its headers or its signature can be wrong that we know of. Bodies are built from
    /// a valid one-message webhook for <paramref name="account"/> so that only the named defect makes them bad.
    /// <paramref name="maxBodyBytes"/> is the gateway's configured limit.
    /// </summary>
    public static IReadOnlyList<HostileInput> Corpus(string account, int maxBodyBytes)
    {
        string valid = WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage("wamid.hostile", "4911", 1700000000, "x")]);
        byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);
        string Replace(string from, string to)
        {
            string replaced = valid.Replace(from, to, StringComparison.Ordinal);
            return replaced != valid ? replaced : throw new InvalidOperationException($"'{from}' is not in the valid payload.");
        }

        byte[] WithBytes(string marker, params byte[] bytes)
        {
            // Replaces the text body "x" with raw bytes that no UTF-8 encoder would produce.
            byte[] whole = Utf8(valid);
            int at = valid.IndexOf(marker, StringComparison.Ordinal) + marker.Length - 2;
            return [.. whole[..at], .. bytes, .. whole[(at + 1)..]];
        }

        string deepArrays = new string('[', 10_000) + new string(']', 10_000);
        string deepObjects = string.Concat(Enumerable.Repeat("{\"a\":", 10_000)) + "1" + new string('}', 10_000);
        string hugeArray = "[" + string.Join(',', Enumerable.Repeat("1", maxBodyBytes / 3)) + "]";
        string tooLarge = Replace("\"body\":\"x\"", "\"body\":\"" + new string('a', maxBodyBytes) + "\"");

        return
        [
            // Not JSON, or not one complete JSON value.
            new("empty body", [], 400, "malformed_json"),
            new("whitespace only", Utf8("  \r\n\t "), 400, "malformed_json"),
            new("truncated", Utf8(valid[..^5]), 400, "malformed_json"),
            new("truncated inside a string", Utf8(valid[..(valid.IndexOf("\"body\":\"x", StringComparison.Ordinal) + 8)]), 400, "malformed_json"),
            new("trailing garbage", Utf8(valid + "xyz"), 400, "malformed_json"),
            new("two documents", Utf8(valid + valid), 400, "malformed_json"),
            new("trailing comma", Utf8(Replace("\"entry\":[{", "\"entry\":[{\"x\":1,},{")), 400, "malformed_json"),
            new("single quotes", Utf8(Replace("\"object\"", "'object'")), 400, "malformed_json"),
            new("block comment", Utf8(Replace("{\"object\"", "{/* hi */\"object\"")), 400, "malformed_json"),
            new("line comment", Utf8(Replace("{\"object\"", "{// hi\n\"object\"")), 400, "malformed_json"),
            new("NaN", Utf8(Replace("\"type\":\"text\"", "\"type\":\"text\",\"n\":NaN")), 400, "malformed_json"),
            new("Infinity", Utf8(Replace("\"type\":\"text\"", "\"type\":\"text\",\"n\":Infinity")), 400, "malformed_json"),
            new("-Infinity", Utf8(Replace("\"type\":\"text\"", "\"type\":\"text\",\"n\":-Infinity")), 400, "malformed_json"),
            new("byte order mark", [0xEF, 0xBB, 0xBF, .. Utf8(valid)], 400, "malformed_json"),
            new("raw control character in a string", WithBytes("\"body\":\"x\"", 0x01), 400, "malformed_json"),
            new("unknown escape", Utf8(Replace("\"body\":\"x\"", "\"body\":\"\\x41\"")), 400, "malformed_json"),
            new("arrays nested 10,000 deep", Utf8(Replace("\"type\":\"text\"", "\"type\":\"text\",\"n\":" + deepArrays)), 400, "malformed_json"),
            new("objects nested 10,000 deep", Utf8(Replace("\"type\":\"text\"", "\"type\":\"text\",\"n\":" + deepObjects)), 400, "malformed_json"),

            // JSON, but not text we can store.
            new("invalid UTF-8 byte", WithBytes("\"body\":\"x\"", 0xFF), 400, "invalid_utf8"),
            new("overlong UTF-8 encoding", WithBytes("\"body\":\"x\"", 0xC0, 0xAF), 400, "invalid_utf8"),
            new("UTF-8 encoded surrogate", WithBytes("\"body\":\"x\"", 0xED, 0xA0, 0x80), 400, "invalid_utf8"),
            new("lone high surrogate escape", Utf8(Replace("\"body\":\"x\"", "\"body\":\"\\ud83d\"")), 400, "invalid_string_escape"),
            new("lone low surrogate escape", Utf8(Replace("\"body\":\"x\"", "\"body\":\"\\ude00 tail\"")), 400, "invalid_string_escape"),
            new("lone surrogate escape in a key (found by the fuzzer)", Utf8(Replace("\"changes\"", "\"chan\\ud800ges\"")), 400, "invalid_string_escape"),

            // Ids no real delivery carries: refused before they reach an index (PostgreSQL's limit is 2,704 bytes).
            new("incompressible 10 KB wamid", Utf8(Replace("\"id\":\"wamid.hostile\"", "\"id\":\"" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(7500)) + "\"")), 400, "key_too_long"),
            new("phone_number_id of 257 bytes", Utf8(Replace("\"phone_number_id\":\"", "\"phone_number_id\":\"" + new string('1', 257))), 400, "key_too_long"),
            new("sender of 300 bytes", Utf8(Replace("\"from\":\"", "\"from\":\"" + new string('4', 300))), 400, "key_too_long"),

            // Well-formed JSON of the wrong shape.
            new("null document", Utf8("null"), 400, "wrong_shape"),
            new("array document", Utf8("[]"), 400, "wrong_shape"),
            new("string document", Utf8("\"whatsapp_business_account\""), 400, "wrong_shape"),
            new("object of another product", Utf8(Replace("\"whatsapp_business_account\"", "\"page\"")), 400, "unexpected_object"),
            new("object as a number", Utf8(Replace("\"object\":\"whatsapp_business_account\"", "\"object\":5")), 400, "unexpected_object"),
            new("entry as a string", Utf8("{\"object\":\"whatsapp_business_account\",\"entry\":\"x\"}"), 400, "wrong_shape"),
            new("entry items not objects", Utf8(Replace("\"entry\":[", "\"entry\":[[],")), 400, "wrong_shape"),
            new("messages as an object", Utf8(Replace("\"messages\":[", "\"messages\":{\"m\":").Replace("\"type\":\"text\"}]", "\"type\":\"text\"}}", StringComparison.Ordinal)), 400, "wrong_shape"),
            new("huge array of numbers as messages", Utf8(Replace("\"messages\":[", "\"messages\":" + hugeArray[..^1] + ",")), 400, "wrong_shape"),
            new("timestamp not a number", Utf8(Replace("\"timestamp\":\"1700000000\"", "\"timestamp\":\"soon\"")), 400, "wrong_shape"),
            new("message id a number", Utf8(Replace("\"id\":\"wamid.hostile\"", "\"id\":42")), 400, "wrong_shape"),
            new("missing phone_number_id", Utf8(Replace("\"phone_number_id\"", "\"phone_number\"")), 400, "missing_field"),
            new("missing object", Utf8(Replace("\"object\":\"whatsapp_business_account\",", "")), 400, "missing_field"),
            new("duplicate object key", Utf8(Replace("{\"object\":\"whatsapp_business_account\"", "{\"object\":\"whatsapp_business_account\",\"object\":\"whatsapp_business_account\"")), 400, "duplicate_key"),
            new("duplicate message id key", Utf8(Replace("\"id\":\"wamid.hostile\"", "\"id\":\"wamid.hostile\",\"id\":\"wamid.other\"")), 400, "duplicate_key"),

            // Size.
            new("oversize", Utf8(tooLarge), 413, "body_too_large"),
            new("oversize, chunked", Utf8(tooLarge), 413, "body_too_large") { Chunked = true },

            // Headers.
            new("text/plain", Utf8(valid), 415, "unsupported_media_type") { ContentType = "text/plain" },
            new("no content type", Utf8(valid), 415, "unsupported_media_type") { ContentType = "" },
            new("form encoded", Utf8(valid), 415, "unsupported_media_type") { ContentType = "application/x-www-form-urlencoded" },
            new("gzip", Utf8(valid), 415, "unsupported_content_encoding") { ContentEncoding = "gzip" },
            new("brotli", Utf8(valid), 415, "unsupported_content_encoding") { ContentEncoding = "br" },

            // Signature.
            new("unsigned", Utf8(valid), 401, "missing_signature") { Signed = false },
            new("sha1 signature", Utf8(valid), 401, "malformed_signature") { SignatureHeader = "sha1=" + new string('0', 40) },
            new("signature not hex", Utf8(valid), 401, "malformed_signature") { SignatureHeader = "sha256=" + new string('z', 64) },
            new("signature too short", Utf8(valid), 401, "malformed_signature") { SignatureHeader = "sha256=abcd" },
            new("signature of another body", Utf8(valid), 401, "signature_mismatch") { SignOver = Utf8(valid + " ") },
            new("signed with an empty secret", Utf8(valid), 401, "signature_mismatch") { SecretOverride = "" },
        ];
    }
}
