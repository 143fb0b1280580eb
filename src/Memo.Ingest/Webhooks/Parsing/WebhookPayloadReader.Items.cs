using System.Text.Json;

namespace Memo.Ingest.Webhooks.Parsing;

/// <summary>The items of a <c>messages</c> change: contacts, messages of every type, and statuses.</summary>
internal ref partial struct WebhookPayloadReader
{
    private void ReadContact()
    {
        Expect(JsonTokenType.StartObject);
        ref StagedRecord contact = ref _target.Add(RecordKind.Contact);
        uint seen = 0;
        while (true)
        {
            Read();
            if (_reader.TokenType == JsonTokenType.EndObject)
            {
                break;
            }

            if (Is("wa_id"u8))
            {
                MarkSeen(ref seen, 1);
                contact.WaId = ReadKey();
            }
            else if (Is("profile"u8))
            {
                MarkSeen(ref seen, 2);
                Read();
                contact.Body = ReadNestedString("name"u8);
            }
            else
            {
                SkipProperty();
            }
        }

        if (contact.WaId.IsNull)
        {
            PayloadRejectedException.Throw(WebhookRejectionReason.MissingField);
        }
    }

    /// <summary>
    /// One inbound message. Columns: id, from, timestamp, type, context.id, and a text taken from the typed part:
    /// text.body; the caption of image, video, document, audio or sticker; button.text; the title of an interactive
    /// button or list reply, the body of a flow (nfm) reply; reaction.emoji (empty when a reaction is removed);
    /// order.text; system.body; location.name. Everything else stays in the raw payload.
    /// </summary>
    private void ReadMessage()
    {
        Expect(JsonTokenType.StartObject);
        long start = _reader.TokenStartIndex;
        ref StagedRecord message = ref _target.Add(RecordKind.Message);
        bool hasTimestamp = false;
        uint seen = 0;
        while (true)
        {
            Read();
            if (_reader.TokenType == JsonTokenType.EndObject)
            {
                break;
            }

            if (Is("id"u8))
            {
                MarkSeen(ref seen, 1 << 0);
                message.Id = ReadKey();
            }
            else if (Is("from"u8))
            {
                MarkSeen(ref seen, 1 << 1);
                message.WaId = ReadKey();
            }
            else if (Is("timestamp"u8))
            {
                MarkSeen(ref seen, 1 << 2);
                message.Timestamp = ReadTimestamp();
                hasTimestamp = true;
            }
            else if (Is("type"u8))
            {
                MarkSeen(ref seen, 1 << 3);
                message.Type = ReadKey();
            }
            else if (Is("context"u8))
            {
                MarkSeen(ref seen, 1 << 4);
                Read();
                message.ContextId = ReadNestedString("id"u8);
            }
            else if (Is("text"u8) || Is("system"u8))
            {
                MarkSeen(ref seen, 1 << 5);
                Read();
                message.Body = ReadNestedString("body"u8);
            }
            else if (Is("image"u8) || Is("video"u8) || Is("document"u8) || Is("audio"u8) || Is("sticker"u8))
            {
                MarkSeen(ref seen, 1 << 5);
                Read();
                message.Body = ReadNestedString("caption"u8);
            }
            else if (Is("button"u8) || Is("order"u8))
            {
                MarkSeen(ref seen, 1 << 5);
                Read();
                message.Body = ReadNestedString("text"u8);
            }
            else if (Is("reaction"u8))
            {
                MarkSeen(ref seen, 1 << 5);
                Read();
                message.Body = ReadNestedString("emoji"u8);
                if (message.Body.IsNull)
                {
                    // A removed reaction arrives without an emoji (or with ""): store it as an empty text.
                    message.Body = _target.Arena.Append([]);
                }
            }
            else if (Is("location"u8))
            {
                MarkSeen(ref seen, 1 << 5);
                Read();
                message.Body = ReadNestedString("name"u8);
            }
            else if (Is("interactive"u8))
            {
                MarkSeen(ref seen, 1 << 5);
                Read();
                message.Body = ReadInteractiveReply();
            }
            else
            {
                SkipProperty();
            }
        }

        if (message.Id.IsNull || !hasTimestamp)
        {
            PayloadRejectedException.Throw(WebhookRejectionReason.MissingField);
        }

        message.Payload = CopyRaw(start);
    }

    /// <summary>A delivery receipt: sent, delivered, read, played or failed (with errors), with pricing and more.</summary>
    private void ReadStatus()
    {
        Expect(JsonTokenType.StartObject);
        long start = _reader.TokenStartIndex;
        ref StagedRecord status = ref _target.Add(RecordKind.Status);
        bool hasTimestamp = false;
        uint seen = 0;
        while (true)
        {
            Read();
            if (_reader.TokenType == JsonTokenType.EndObject)
            {
                break;
            }

            if (Is("id"u8))
            {
                MarkSeen(ref seen, 1 << 0);
                status.Id = ReadKey();
            }
            else if (Is("status"u8))
            {
                MarkSeen(ref seen, 1 << 1);
                status.Type = ReadKey();
            }
            else if (Is("timestamp"u8))
            {
                MarkSeen(ref seen, 1 << 2);
                status.Timestamp = ReadTimestamp();
                hasTimestamp = true;
            }
            else if (Is("recipient_id"u8))
            {
                MarkSeen(ref seen, 1 << 3);
                status.WaId = ReadKey();
            }
            else if (Is("errors"u8))
            {
                MarkSeen(ref seen, 1 << 4);
                Read();
                status.Errors = _reader.TokenType == JsonTokenType.Null ? default : ReadRawValue();
            }
            else
            {
                SkipProperty();
            }
        }

        if (status.Id.IsNull || status.Type.IsNull || !hasTimestamp)
        {
            PayloadRejectedException.Throw(WebhookRejectionReason.MissingField);
        }

        status.Payload = CopyRaw(start);
    }

    /// <summary><c>interactive</c>: the title of a button or list reply, or the body of a flow (nfm) reply.</summary>
    private Utf8Range ReadInteractiveReply()
    {
        if (_reader.TokenType == JsonTokenType.Null)
        {
            return default;
        }

        Expect(JsonTokenType.StartObject);
        Utf8Range text = default;
        uint seen = 0;
        while (true)
        {
            Read();
            if (_reader.TokenType == JsonTokenType.EndObject)
            {
                return text;
            }

            if (Is("button_reply"u8) || Is("list_reply"u8))
            {
                MarkSeen(ref seen, 1);
                Read();
                text = ReadNestedString("title"u8);
            }
            else if (Is("nfm_reply"u8))
            {
                MarkSeen(ref seen, 1);
                Read();
                text = ReadNestedString("body"u8);
            }
            else
            {
                SkipProperty();
            }
        }
    }

    /// <summary>With the reader on an object (or null): returns one string property of it and skips the rest.</summary>
    private Utf8Range ReadNestedString(ReadOnlySpan<byte> name)
    {
        if (_reader.TokenType == JsonTokenType.Null)
        {
            return default;
        }

        Expect(JsonTokenType.StartObject);
        Utf8Range value = default;
        bool seen = false;
        while (true)
        {
            Read();
            if (_reader.TokenType == JsonTokenType.EndObject)
            {
                return value;
            }

            if (Is(name))
            {
                if (seen)
                {
                    PayloadRejectedException.Throw(WebhookRejectionReason.DuplicateKey);
                }

                seen = true;
                value = ReadString();
            }
            else
            {
                SkipProperty();
            }
        }
    }
}
