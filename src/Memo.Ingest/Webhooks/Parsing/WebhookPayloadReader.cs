using System.Buffers;
using System.Buffers.Text;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Unicode;

namespace Memo.Ingest.Webhooks.Parsing;

/// <summary>
/// Reads a WhatsApp Cloud API webhook body with <see cref="Utf8JsonReader"/> straight from the pooled body, without a
/// DOM, into <see cref="StagedRecord"/>s of a <see cref="ParsedWebhook"/>. Keys may come in any order and unknown
/// fields are allowed at every level (Meta adds fields without notice); every escaped string is validated, because
/// no UTF-8 consumer can take a lone surrogate and one such value must not fail a shared batch.
/// Payload reference: developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/overview.
/// </summary>
internal ref partial struct WebhookPayloadReader
{
    // Meta's payloads nest about ten levels deep; 64 (the reader's default) bounds hostile nesting without a stack risk.

    /// <summary>The longest id, phone number or status name accepted (bytes of UTF-8).</summary>
    public const int MaxKeyBytes = 256;

    private static readonly JsonReaderOptions s_options = new() { MaxDepth = 64 };

    private readonly ReadOnlySpan<byte> _span;
    private readonly ReadOnlySequence<byte> _sequence;
    private readonly bool _isSequence;
    private readonly ParsedWebhook _target;
    private Utf8JsonReader _reader;

    private WebhookPayloadReader(ReadOnlySpan<byte> body, ParsedWebhook target)
    {
        _span = body;
        _target = target;
        _reader = new Utf8JsonReader(body, s_options);
    }

    private WebhookPayloadReader(in ReadOnlySequence<byte> body, ParsedWebhook target)
    {
        _sequence = body;
        _isSequence = true;
        _target = target;
        _reader = new Utf8JsonReader(body, s_options);
    }

    /// <summary>Parses a contiguous body (the webhook endpoint's case). On rejection the target holds no records.</summary>
    public static WebhookRejectionReason Parse(ReadOnlySpan<byte> body, ParsedWebhook target)
    {
        if (!Utf8.IsValid(body))
        {
            return WebhookRejectionReason.InvalidUtf8;
        }

        var reader = new WebhookPayloadReader(body, target);
        return reader.ParseDocument();
    }

    /// <summary>Parses a body held in several segments, split anywhere.</summary>
    public static WebhookRejectionReason Parse(in ReadOnlySequence<byte> body, ParsedWebhook target)
    {
        if (body.IsSingleSegment)
        {
            return Parse(body.FirstSpan, target);
        }

        if (!Utf8Validation.IsValid(body))
        {
            return WebhookRejectionReason.InvalidUtf8;
        }

        var reader = new WebhookPayloadReader(body, target);
        return reader.ParseDocument();
    }

    private WebhookRejectionReason ParseDocument()
    {
        int start = _target.Count;
        try
        {
            Read();
            ReadRoot();
            if (_reader.Read())
            {
                // Read() throws on trailing garbage; a second complete value is refused here.
                return WebhookRejectionReason.MalformedJson;
            }

            return WebhookRejectionReason.None;
        }
        catch (JsonException)
        {
            _target.Truncate(start);
            return WebhookRejectionReason.MalformedJson;
        }
        catch (PayloadRejectedException e)
        {
            _target.Truncate(start);
            return e.Reason;
        }
    }

    private void Read()
    {
        if (!_reader.Read())
        {
            PayloadRejectedException.Throw(WebhookRejectionReason.MalformedJson);
        }
    }

    private readonly void Expect(JsonTokenType type)
    {
        if (_reader.TokenType != type)
        {
            PayloadRejectedException.Throw(WebhookRejectionReason.WrongShape);
        }
    }

    /// <summary>Marks a known key as seen in this object; a repeat is refused, since the stored raw JSON and the
    /// extracted columns could otherwise disagree about which value counts.</summary>
    private static void MarkSeen(ref uint seen, uint bit)
    {
        if ((seen & bit) != 0)
        {
            PayloadRejectedException.Throw(WebhookRejectionReason.DuplicateKey);
        }

        seen |= bit;
    }

    /// <summary>Reads the next value as a string (unescaped, in the arena) or null.</summary>
    private Utf8Range ReadString()
    {
        Read();
        if (_reader.TokenType == JsonTokenType.Null)
        {
            return default;
        }

        Expect(JsonTokenType.String);
        return CopyCurrentString();
    }

    /// <summary>
    /// Reads the next value as a string or null, like <see cref="ReadString"/>, for a value that becomes part of a key
    /// or an index in PostgreSQL (ids, phone numbers, status names): those have a length limit.
    /// </summary>
    private Utf8Range ReadKey() => CheckKeyLength(ReadString());

    /// <summary>
    /// Refuses a key longer than <see cref="MaxKeyBytes"/>. Meta's ids are far shorter (a wamid is about 60 bytes); a
    /// value past the limit is not a real id, and one past PostgreSQL's index row limit (2,704 bytes) could never be
    /// stored, so it is answered 400 here rather than failing in the database.
    /// </summary>
    private static Utf8Range CheckKeyLength(Utf8Range value)
    {
        if (value.Length > MaxKeyBytes)
        {
            PayloadRejectedException.Throw(WebhookRejectionReason.KeyTooLong);
        }

        return value;
    }

    /// <summary>
    /// Copies the current string, unescaped, into the arena. A \u0000 in it (valid JSON, but PostgreSQL's text cannot
    /// hold it) becomes U+FFFD in the column; the raw JSON payload keeps the escape exactly as sent.
    /// </summary>
    private Utf8Range CopyCurrentString()
    {
        int escapedLength = _reader.HasValueSequence ? checked((int)_reader.ValueSequence.Length) : _reader.ValueSpan.Length;
        Span<byte> destination = _target.Arena.GetSpan(escapedLength);
        int written = UnescapeCurrent(destination);
        if (_reader.ValueIsEscaped && destination[..written].Contains((byte)0))
        {
            written = ReplaceNul(destination, written);
        }

        return _target.Arena.Commit(written);
    }

    /// <summary>
    /// Replaces every NUL byte of <paramref name="text"/>'s first <paramref name="length"/> bytes with U+FFFD (3 bytes)
    /// in place. There is room: each NUL came from a six-byte escape, and the span holds the escaped length.
    /// </summary>
    private static int ReplaceNul(Span<byte> text, int length)
    {
        int nuls = text[..length].Count((byte)0);
        int end = length + (2 * nuls);
        for (int from = length - 1, to = end - 1; from >= 0; from--)
        {
            if (text[from] == 0)
            {
                text[to--] = 0xBD;
                text[to--] = 0xBF;
                text[to--] = 0xEF;
            }
            else
            {
                text[to--] = text[from];
            }
        }

        return end;
    }

    /// <summary>Unescapes the current string or property name; refuses escapes that are not valid UTF-16.</summary>
    private readonly int UnescapeCurrent(Span<byte> destination)
    {
        int written = 0;
        try
        {
            written = _reader.CopyString(destination);
        }
        catch (InvalidOperationException)
        {
            // CopyString throws for escapes that do not form valid UTF-16 (a lone surrogate such as \ud800), which no
            // UTF-8 column or consumer can take.
            PayloadRejectedException.Throw(WebhookRejectionReason.InvalidStringEscape);
        }

        return written;
    }

    /// <summary>Validates an escaped string or property name that the parser does not keep as a column.</summary>
    private readonly void ValidateCurrentEscapes()
    {
        if (!_reader.ValueIsEscaped)
        {
            return;
        }

        int escapedLength = _reader.HasValueSequence ? checked((int)_reader.ValueSequence.Length) : _reader.ValueSpan.Length;
        UnescapeCurrent(_target.Arena.GetSpan(escapedLength));
    }

    /// <summary>Reads Meta's Unix-seconds timestamp, sent as a string of digits (a bare number is accepted too).</summary>
    private long ReadTimestamp()
    {
        Read();
        if (_reader.TokenType is not (JsonTokenType.String or JsonTokenType.Number) || _reader.ValueIsEscaped)
        {
            PayloadRejectedException.Throw(WebhookRejectionReason.WrongShape);
        }

        scoped ReadOnlySpan<byte> digits = _reader.ValueSpan;
        Span<byte> copy = stackalloc byte[20];
        if (_reader.HasValueSequence)
        {
            ReadOnlySequence<byte> value = _reader.ValueSequence;
            if (value.Length > copy.Length)
            {
                PayloadRejectedException.Throw(WebhookRejectionReason.WrongShape);
            }

            value.CopyTo(copy);
            digits = copy[..(int)value.Length];
        }

        if (!Utf8Parser.TryParse(digits, out long seconds, out int consumed) || consumed != digits.Length || seconds < 0)
        {
            PayloadRejectedException.Throw(WebhookRejectionReason.WrongShape);
        }

        return seconds;
    }

    /// <summary>
    /// With the reader on the first token of a value, skips the whole value while validating its strings.
    /// </summary>
    private void SkipValue()
    {
        switch (_reader.TokenType)
        {
            case JsonTokenType.String:
                ValidateCurrentEscapes();
                return;
            case JsonTokenType.StartObject or JsonTokenType.StartArray:
                int depth = _reader.CurrentDepth;
                while (true)
                {
                    Read();
                    switch (_reader.TokenType)
                    {
                        case JsonTokenType.String or JsonTokenType.PropertyName:
                            ValidateCurrentEscapes();
                            break;
                        case JsonTokenType.EndObject or JsonTokenType.EndArray when _reader.CurrentDepth == depth:
                            return;
                    }
                }

            default:
                return;
        }
    }

    /// <summary>Skips the value after an unknown property name.</summary>
    private void SkipProperty()
    {
        ValidateCurrentEscapes();
        Read();
        SkipValue();
    }

    /// <summary>With the reader on the first token of a value: skips it and keeps its raw JSON in the arena.</summary>
    private Utf8Range ReadRawValue()
    {
        long start = _reader.TokenStartIndex;
        SkipValue();
        return CopyRaw(start);
    }

    /// <summary>Copies the input from <paramref name="start"/> to the end of the current token into the arena.</summary>
    private readonly Utf8Range CopyRaw(long start)
    {
        long length = _reader.BytesConsumed - start;
        return _isSequence
            ? _target.Arena.Append(_sequence.Slice(start, length))
            : _target.Arena.Append(_span.Slice((int)start, (int)length));
    }

    /// <summary>Compares the current property name or string with <paramref name="text"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private readonly bool Is(ReadOnlySpan<byte> text) => _reader.ValueIsEscaped ? EscapedEquals(text) : _reader.ValueTextEquals(text);

    /// <summary>ValueTextEquals unescapes first and throws for an escape that is not valid UTF-16 (a lone surrogate,
    /// found by the fuzzer in property names); that is the same defect as in a value.</summary>
    private readonly bool EscapedEquals(ReadOnlySpan<byte> text)
    {
        try
        {
            return _reader.ValueTextEquals(text);
        }
        catch (InvalidOperationException)
        {
            PayloadRejectedException.Throw(WebhookRejectionReason.InvalidStringEscape);
            return false;
        }
    }
}
