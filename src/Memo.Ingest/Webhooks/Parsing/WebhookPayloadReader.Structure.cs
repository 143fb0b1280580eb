using System.Text.Json;

namespace Memo.Ingest.Webhooks.Parsing;

/// <summary>The envelope: <c>{object, entry[{id, changes[{field, value}]}]}</c>.</summary>
internal ref partial struct WebhookPayloadReader
{
    private void ReadRoot()
    {
        Expect(JsonTokenType.StartObject);
        uint seen = 0;
        while (true)
        {
            Read();
            if (_reader.TokenType == JsonTokenType.EndObject)
            {
                break;
            }

            if (Is("object"u8))
            {
                MarkSeen(ref seen, 1);
                Read();
                if (_reader.TokenType != JsonTokenType.String || !Is("whatsapp_business_account"u8))
                {
                    PayloadRejectedException.Throw(WebhookRejectionReason.UnexpectedObject);
                }
            }
            else if (Is("entry"u8))
            {
                MarkSeen(ref seen, 2);
                ReadArray(static (ref WebhookPayloadReader r) => r.ReadEntry());
            }
            else
            {
                SkipProperty();
            }
        }

        if (seen != 3)
        {
            PayloadRejectedException.Throw(WebhookRejectionReason.MissingField);
        }
    }

    private void ReadEntry()
    {
        Expect(JsonTokenType.StartObject);
        int first = _target.Count;
        Utf8Range wabaId = default;
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
                MarkSeen(ref seen, 1);
                wabaId = ReadKey();
            }
            else if (Is("changes"u8))
            {
                MarkSeen(ref seen, 2);
                ReadArray(static (ref WebhookPayloadReader r) => r.ReadChange());
            }
            else
            {
                SkipProperty();
            }
        }

        // The entry id may follow its changes: stamp it on the records once the entry is complete.
        for (int i = first; i < _target.Count; i++)
        {
            _target[i].WabaId = wabaId;
        }
    }

    private void ReadChange()
    {
        Expect(JsonTokenType.StartObject);
        Utf8Range field = default;
        bool isMessages = false;
        bool hasValue = false;
        long deferredStart = -1;
        long deferredLength = 0;
        Utf8Range otherValue = default;
        uint seen = 0;
        while (true)
        {
            Read();
            if (_reader.TokenType == JsonTokenType.EndObject)
            {
                break;
            }

            if (Is("field"u8))
            {
                MarkSeen(ref seen, 1);
                Read();
                Expect(JsonTokenType.String);
                isMessages = Is("messages"u8);
                field = CheckKeyLength(CopyCurrentString());
            }
            else if (Is("value"u8))
            {
                MarkSeen(ref seen, 2);
                hasValue = true;
                Read();
                if (field.IsNull)
                {
                    // "value" before "field": remember where it is and parse it once the field is known.
                    deferredStart = _reader.TokenStartIndex;
                    SkipValue();
                    deferredLength = _reader.BytesConsumed - deferredStart;
                }
                else if (isMessages)
                {
                    ReadMessagesValue();
                }
                else
                {
                    otherValue = ReadRawValue();
                }
            }
            else
            {
                SkipProperty();
            }
        }

        if (field.IsNull || !hasValue)
        {
            PayloadRejectedException.Throw(WebhookRejectionReason.MissingField);
        }

        if (deferredStart >= 0)
        {
            var deferred = _isSequence
                ? new WebhookPayloadReader(_sequence.Slice(deferredStart, deferredLength), _target)
                : new WebhookPayloadReader(_span.Slice((int)deferredStart, (int)deferredLength), _target);
            deferred.Read();
            if (isMessages)
            {
                deferred.ReadMessagesValue();
            }
            else
            {
                otherValue = deferred.ReadRawValue();
            }
        }

        if (!isMessages)
        {
            ref StagedRecord update = ref _target.Add(RecordKind.AccountUpdate);
            update.Type = field;
            update.Payload = otherValue;
        }
    }

    /// <summary>The <c>value</c> of a <c>messages</c> change: metadata, contacts, messages, statuses, errors.</summary>
    private void ReadMessagesValue()
    {
        Expect(JsonTokenType.StartObject);
        int first = _target.Count;
        Utf8Range phoneNumberId = default;
        Utf8Range displayPhoneNumber = default;
        uint seen = 0;
        while (true)
        {
            Read();
            if (_reader.TokenType == JsonTokenType.EndObject)
            {
                break;
            }

            if (Is("metadata"u8))
            {
                MarkSeen(ref seen, 1);
                ReadMetadata(out phoneNumberId, out displayPhoneNumber);
            }
            else if (Is("contacts"u8))
            {
                MarkSeen(ref seen, 2);
                ReadArray(static (ref WebhookPayloadReader r) => r.ReadContact());
            }
            else if (Is("messages"u8))
            {
                MarkSeen(ref seen, 4);
                ReadArray(static (ref WebhookPayloadReader r) => r.ReadMessage());
            }
            else if (Is("statuses"u8))
            {
                MarkSeen(ref seen, 8);
                ReadArray(static (ref WebhookPayloadReader r) => r.ReadStatus());
            }
            else if (Is("errors"u8))
            {
                // Webhook-level errors (for example a message Meta could not deliver to us) are kept whole.
                MarkSeen(ref seen, 16);
                Read();
                Utf8Range errors = ReadRawValue();
                ref StagedRecord update = ref _target.Add(RecordKind.AccountUpdate);
                update.Type = _target.Arena.Append("messages.errors"u8);
                update.Payload = errors;
            }
            else
            {
                SkipProperty();
            }
        }

        if (_target.Count > first && phoneNumberId.IsNull)
        {
            PayloadRejectedException.Throw(WebhookRejectionReason.MissingField);
        }

        // metadata may follow the arrays: stamp the account on the records once the value is complete.
        for (int i = first; i < _target.Count; i++)
        {
            ref StagedRecord record = ref _target[i];
            record.Account = phoneNumberId;
            record.DisplayPhoneNumber = displayPhoneNumber;
        }
    }

    private void ReadMetadata(out Utf8Range phoneNumberId, out Utf8Range displayPhoneNumber)
    {
        phoneNumberId = default;
        displayPhoneNumber = default;
        Read();
        Expect(JsonTokenType.StartObject);
        uint seen = 0;
        while (true)
        {
            Read();
            if (_reader.TokenType == JsonTokenType.EndObject)
            {
                return;
            }

            if (Is("phone_number_id"u8))
            {
                MarkSeen(ref seen, 1);
                phoneNumberId = ReadKey();
            }
            else if (Is("display_phone_number"u8))
            {
                MarkSeen(ref seen, 2);
                displayPhoneNumber = ReadKey();
            }
            else
            {
                SkipProperty();
            }
        }
    }

    private delegate void ElementReader(ref WebhookPayloadReader reader);

    /// <summary>Reads an array (or null) of elements, each read by <paramref name="readElement"/>.</summary>
    private void ReadArray(ElementReader readElement)
    {
        Read();
        if (_reader.TokenType == JsonTokenType.Null)
        {
            return;
        }

        Expect(JsonTokenType.StartArray);
        while (true)
        {
            Read();
            if (_reader.TokenType == JsonTokenType.EndArray)
            {
                return;
            }

            readElement(ref this);
        }
    }
}
