using System.Text.Json;
using Memo.Ingest.Outbox;

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
    /// One message: inbound, echoed or from the history (<paramref name="origin"/>). Columns: id, from, to,
    /// timestamp, type, context.id, and a text taken from the typed part: text.body; the caption of image, video,
    /// document, audio or sticker; button.text; the title of an interactive button or list reply, the body of a flow
    /// (nfm) reply; reaction.emoji (empty when a reaction is removed); order.text; system.body; location.name; an
    /// edit's new text or caption (its original in context.id), a revoke's original (context.id); a history
    /// message's <c>history_context.status</c>. Everything else stays in the raw payload.
    /// </summary>
    private void ReadMessage(MessageOrigin origin)
    {
        Expect(JsonTokenType.StartObject);
        long start = _reader.TokenStartIndex;
        ref StagedRecord message = ref _target.Add(RecordKind.Message);
        message.Origin = origin;
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
            else if (Is("edit"u8))
            {
                MarkSeen(ref seen, 1 << 5);
                ReadEdit(ref message);
            }
            else if (Is("revoke"u8))
            {
                MarkSeen(ref seen, 1 << 5);
                Read();
                message.ContextId = CheckKeyLength(ReadNestedString("original_message_id"u8));
            }
            else if (Is("to"u8))
            {
                MarkSeen(ref seen, 1 << 6);
                message.To = ReadKey();
            }
            else if (Is("history_context"u8) && origin == MessageOrigin.History)
            {
                MarkSeen(ref seen, 1 << 7);
                Read();
                message.HistoryStatus = CheckKeyLength(ReadNestedString("status"u8));
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

    /// <summary>
    /// <c>edit: {original_message_id, message: {context?, type, &lt;type&gt;: {...}}}</c>: the original's id, and the
    /// new text (or caption) of the edited message.
    /// </summary>
    private void ReadEdit(ref StagedRecord message)
    {
        Read();
        if (_reader.TokenType == JsonTokenType.Null)
        {
            return;
        }

        Expect(JsonTokenType.StartObject);
        uint seen = 0;
        while (true)
        {
            Read();
            if (_reader.TokenType == JsonTokenType.EndObject)
            {
                return;
            }

            if (Is("original_message_id"u8))
            {
                MarkSeen(ref seen, 1);
                message.ContextId = ReadKey();
            }
            else if (Is("message"u8))
            {
                MarkSeen(ref seen, 2);
                Read();
                message.Body = ReadEditedText();
            }
            else
            {
                SkipProperty();
            }
        }
    }

    /// <summary>The text of an edited message: <c>text.body</c>, or the caption of its media.</summary>
    private Utf8Range ReadEditedText()
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

            if (Is("text"u8))
            {
                MarkSeen(ref seen, 1);
                Read();
                text = ReadNestedString("body"u8);
            }
            else if (Is("image"u8) || Is("video"u8) || Is("document"u8))
            {
                MarkSeen(ref seen, 1);
                Read();
                text = ReadNestedString("caption"u8);
            }
            else
            {
                SkipProperty();
            }
        }
    }

    /// <summary>A delivery receipt: sent, delivered, read, played or failed (with errors), with pricing and more.</summary>
    private void ReadStatus()
    {
        Expect(JsonTokenType.StartObject);
        long start = _reader.TokenStartIndex;
        ref StagedRecord status = ref _target.Add(RecordKind.Status);
        bool hasTimestamp = false;
        Utf8Range callbackData = default;
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
            else if (Is("biz_opaque_callback_data"u8))
            {
                MarkSeen(ref seen, 1 << 5);
                callbackData = ReadKey();
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

        // A reply sent through the outbox: Meta hands back the row's key that the sender passed as
        // biz_opaque_callback_data, so the status lands on that row (its wamid kept beside it), whether or not the
        // gateway lived to store the wamid Meta returned.
        if (!callbackData.IsNull && _target.Arena[callbackData].StartsWith(OutboxMessageKey.Prefix))
        {
            status.Body = status.Id;
            status.Id = callbackData;
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
