using System.Text.Json;

namespace Memo.Ingest.Webhooks.Parsing;

/// <summary>The envelope: <c>{object, entry[{id, changes[{field, value}]}]}</c>.</summary>
internal ref partial struct WebhookPayloadReader
{
    private void ReadRoot()
    {
        Expect(JsonTokenType.StartObject);
        uint seen = 0;
        bool bareHistory = false;
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
                bareHistory |= Is("history"u8);
                SkipProperty();
            }
        }

        if (seen == 0 && bareHistory)
        {
            // Meta documents the declined history as a bare change value, without object/entry/changes: read the
            // whole body as the value of a history change.
            var bare = _isSequence ? new WebhookPayloadReader(_sequence, _target) : new WebhookPayloadReader(_span, _target);
            bare.Read();
            bare.ReadChangeValue(ChangeField.History);
            return;
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

    /// <summary>The fields whose values are parsed into records; any other field is kept whole.</summary>
    private enum ChangeField
    {
        Other,
        Messages,
        Echoes,
        History,
        ContactBook,
    }

    private void ReadChange()
    {
        Expect(JsonTokenType.StartObject);
        Utf8Range fieldName = default;
        ChangeField field = ChangeField.Other;
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
                field = Is("messages"u8) ? ChangeField.Messages
                    : Is("smb_message_echoes"u8) ? ChangeField.Echoes
                    : Is("history"u8) ? ChangeField.History
                    : Is("smb_app_state_sync"u8) ? ChangeField.ContactBook
                    : ChangeField.Other;
                fieldName = CheckKeyLength(CopyCurrentString());
            }
            else if (Is("value"u8))
            {
                MarkSeen(ref seen, 2);
                hasValue = true;
                Read();
                if (fieldName.IsNull)
                {
                    // "value" before "field": remember where it is and parse it once the field is known.
                    deferredStart = _reader.TokenStartIndex;
                    SkipValue();
                    deferredLength = _reader.BytesConsumed - deferredStart;
                }
                else if (field != ChangeField.Other)
                {
                    ReadChangeValue(field);
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

        if (fieldName.IsNull || !hasValue)
        {
            PayloadRejectedException.Throw(WebhookRejectionReason.MissingField);
        }

        if (deferredStart >= 0)
        {
            var deferred = _isSequence
                ? new WebhookPayloadReader(_sequence.Slice(deferredStart, deferredLength), _target)
                : new WebhookPayloadReader(_span.Slice((int)deferredStart, (int)deferredLength), _target);
            deferred.Read();
            if (field != ChangeField.Other)
            {
                deferred.ReadChangeValue(field);
            }
            else
            {
                otherValue = deferred.ReadRawValue();
            }
        }

        if (field == ChangeField.Other)
        {
            ref StagedRecord update = ref _target.Add(RecordKind.AccountUpdate);
            update.Type = fieldName;
            update.Payload = otherValue;
        }
    }

    /// <summary>
    /// The <c>value</c> of a change whose items become records: metadata and, by field, <c>contacts</c>,
    /// <c>messages</c>, <c>statuses</c> and <c>errors</c> (<c>messages</c>); <c>message_echoes</c>
    /// (<c>smb_message_echoes</c>); <c>history</c> chunks and <c>messages</c> (media follow-ups) (<c>history</c>);
    /// <c>state_sync</c> (<c>smb_app_state_sync</c>). Arrays a field does not have are skipped, never refused.
    /// </summary>
    private void ReadChangeValue(ChangeField field)
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
            else if (Is("contacts"u8) && field == ChangeField.Messages)
            {
                MarkSeen(ref seen, 2);
                ReadArray(static (ref WebhookPayloadReader r) => r.ReadContact());
            }
            else if (Is("messages"u8) && field == ChangeField.Messages)
            {
                MarkSeen(ref seen, 4);
                ReadArray(static (ref WebhookPayloadReader r) => r.ReadMessage(MessageOrigin.Live));
            }
            else if (Is("messages"u8) && field == ChangeField.History)
            {
                // Media follow-ups of history placeholders: matched to their placeholder by wamid alone.
                MarkSeen(ref seen, 4);
                int followUps = _target.Count;
                ReadArray(static (ref WebhookPayloadReader r) => r.ReadMessage(MessageOrigin.History));
                for (int i = followUps; i < _target.Count; i++)
                {
                    _target[i].FollowUp = true;
                }
            }
            else if (Is("message_echoes"u8) && field == ChangeField.Echoes)
            {
                MarkSeen(ref seen, 4);
                ReadArray(static (ref WebhookPayloadReader r) => r.ReadMessage(MessageOrigin.Echo));
            }
            else if (Is("history"u8) && field == ChangeField.History)
            {
                MarkSeen(ref seen, 8);
                ReadArray(static (ref WebhookPayloadReader r) => r.ReadHistoryChunk());
            }
            else if (Is("state_sync"u8) && field == ChangeField.ContactBook)
            {
                MarkSeen(ref seen, 8);
                ReadArray(static (ref WebhookPayloadReader r) => r.ReadContactBookEntry());
            }
            else if (Is("statuses"u8) && field == ChangeField.Messages)
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
                update.Type = _target.Arena.Append(field == ChangeField.Messages ? "messages.errors"u8 : "errors"u8);
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

        // metadata may follow the arrays: stamp the account on the records once the value is complete, and work out
        // what needs the business's own number (the direction and the other party of history messages), normalised
        // once for the whole value.
        Span<byte> business = stackalloc byte[PhoneNumbers.MaxDigits];
        business = business[..PhoneNumbers.Normalise(_target.Arena[displayPhoneNumber], business)];
        for (int i = first; i < _target.Count; i++)
        {
            ref StagedRecord record = ref _target[i];
            record.Account = phoneNumberId;
            record.DisplayPhoneNumber = displayPhoneNumber;
            if (record.Kind == RecordKind.Message)
            {
                SetParties(ref record, business);
            }
        }
    }

    /// <summary>
    /// Who the business talks to in a message (the conversation's key, normalised) and whether the business sent it.
    /// Live: the user sent it (<c>from</c>). Echo: the business sent it to <c>to</c>. History: there is no direction
    /// flag; the business sent it when <c>from</c> is its own number; the other party is the thread's id, or for a
    /// media follow-up (no thread) <c>from</c> or <c>to</c>, whichever is not the business.
    /// </summary>
    private readonly void SetParties(ref StagedRecord record, ReadOnlySpan<byte> business)
    {
        Utf8Arena arena = _target.Arena;
        Utf8Range party;
        switch (record.Origin)
        {
            case MessageOrigin.Echo:
                record.Outbound = true;
                party = record.To;
                break;
            case MessageOrigin.History:
                record.Outbound = PhoneNumbers.Matches(arena[record.WaId], business);
                party = !record.Contact.IsNull ? record.Contact : record.Outbound ? record.To : record.WaId;
                break;
            default:
                party = record.WaId;
                break;
        }

        record.Contact = party.IsNull ? default : Normalised(arena[party]);
    }

    private readonly Utf8Range Normalised(ReadOnlySpan<byte> number)
    {
        Span<byte> digits = stackalloc byte[PhoneNumbers.MaxDigits];
        int length = PhoneNumbers.Normalise(number, digits);
        return length == 0 ? default : _target.Arena.Append(digits[..length]);
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
