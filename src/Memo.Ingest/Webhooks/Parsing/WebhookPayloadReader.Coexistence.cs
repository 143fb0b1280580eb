using System.Buffers.Text;
using System.Text.Json;

namespace Memo.Ingest.Webhooks.Parsing;

/// <summary>
/// The items of the coexistence fields (../shared/COEXISTENCE-FACTS.md): history chunks and their threads, and the
/// phone's contact book. Echoes and history messages are read by <see cref="ReadMessage"/>.
/// </summary>
internal ref partial struct WebhookPayloadReader
{
    /// <summary>
    /// <c>{metadata: {phase, chunk_order, progress}, threads: [{id, messages: [...]}]}</c>, or a refusal
    /// <c>{errors: [{code: 2593109, ...}]}</c>. One <see cref="RecordKind.HistorySync"/> record per chunk (also for an
    /// empty, progress-only one), plus a message record per message of its threads.
    /// </summary>
    private void ReadHistoryChunk()
    {
        Expect(JsonTokenType.StartObject);
        int sync = _target.Count;
        _target.Add(RecordKind.HistorySync);
        Utf8Range errors = default;
        Utf8Range phase = default;
        Utf8Range chunkOrder = default;
        long progress = -1;
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
                ReadChunkMetadata(out phase, out chunkOrder, out progress);
            }
            else if (Is("threads"u8))
            {
                MarkSeen(ref seen, 2);
                ReadArray(static (ref WebhookPayloadReader r) => r.ReadHistoryThread());
            }
            else if (Is("errors"u8))
            {
                MarkSeen(ref seen, 4);
                Read();
                errors = _reader.TokenType == JsonTokenType.Null ? default : ReadRawValue();
            }
            else
            {
                SkipProperty();
            }
        }

        // The chunk's raw JSON is not kept: its messages are kept one by one, a refusal's errors whole.
        ref StagedRecord record = ref _target[sync];
        record.Type = _target.Arena.Append(errors.IsNull ? "chunk"u8 : "declined"u8);
        record.Id = phase;
        record.WaId = chunkOrder;
        record.Timestamp = progress;
        record.Errors = errors;
    }

    /// <summary><c>{phase, chunk_order, progress}</c>, each a number or a string of digits.</summary>
    private void ReadChunkMetadata(out Utf8Range phase, out Utf8Range chunkOrder, out long progress)
    {
        phase = default;
        chunkOrder = default;
        progress = -1;
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

            if (Is("phase"u8))
            {
                MarkSeen(ref seen, 1);
                phase = Digits(ReadTimestamp());
            }
            else if (Is("chunk_order"u8))
            {
                MarkSeen(ref seen, 2);
                chunkOrder = Digits(ReadTimestamp());
            }
            else if (Is("progress"u8))
            {
                MarkSeen(ref seen, 4);
                progress = Math.Min(100, ReadTimestamp());
            }
            else
            {
                SkipProperty();
            }
        }
    }

    /// <summary>A number, written in the arena as its digits (phase and chunk order go to text columns).</summary>
    private readonly Utf8Range Digits(long value)
    {
        Span<byte> digits = _target.Arena.GetSpan(20);
        Utf8Formatter.TryFormat(value, digits, out int written);
        return _target.Arena.Commit(written);
    }

    /// <summary><c>{id: the user's number, messages: [...]}</c>; the id may come after the messages.</summary>
    private void ReadHistoryThread()
    {
        Expect(JsonTokenType.StartObject);
        int first = _target.Count;
        Utf8Range id = default;
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
                id = ReadKey();
            }
            else if (Is("messages"u8))
            {
                MarkSeen(ref seen, 2);
                ReadArray(static (ref WebhookPayloadReader r) => r.ReadMessage(MessageOrigin.History));
            }
            else
            {
                SkipProperty();
            }
        }

        for (int i = first; i < _target.Count; i++)
        {
            if (_target[i].Kind == RecordKind.Message)
            {
                _target[i].Contact = id;
            }
        }
    }

    /// <summary>
    /// <c>{type: "contact", contact: {full_name?, first_name?, phone_number}, action: "add" | "remove",
    /// metadata: {timestamp}}</c>. Another <c>type</c> is skipped (it is not documented).
    /// </summary>
    private void ReadContactBookEntry()
    {
        Expect(JsonTokenType.StartObject);
        long start = _reader.TokenStartIndex;
        int index = _target.Count;
        _target.Add(RecordKind.ContactBook);
        bool isContact = true;
        uint seen = 0;
        while (true)
        {
            Read();
            if (_reader.TokenType == JsonTokenType.EndObject)
            {
                break;
            }

            if (Is("type"u8))
            {
                MarkSeen(ref seen, 1);
                Read();
                isContact = _reader.TokenType == JsonTokenType.String && Is("contact"u8);
            }
            else if (Is("contact"u8))
            {
                MarkSeen(ref seen, 2);
                ReadContactBookContact(index);
            }
            else if (Is("action"u8))
            {
                MarkSeen(ref seen, 4);
                _target[index].Type = ReadKey();
            }
            else if (Is("metadata"u8))
            {
                MarkSeen(ref seen, 8);
                Read();
                _target[index].Timestamp = ReadNestedTimestamp();
            }
            else
            {
                SkipProperty();
            }
        }

        ref StagedRecord entry = ref _target[index];
        if (!isContact)
        {
            _target.Truncate(index);
            return;
        }

        if (entry.To.IsNull || entry.Type.IsNull)
        {
            PayloadRejectedException.Throw(WebhookRejectionReason.MissingField);
        }

        entry.Contact = Normalised(_target.Arena[entry.To]);
        if (entry.Contact.IsNull)
        {
            PayloadRejectedException.Throw(WebhookRejectionReason.WrongShape);
        }

        entry.Payload = CopyRaw(start);
    }

    private void ReadContactBookContact(int index)
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

            if (Is("phone_number"u8))
            {
                MarkSeen(ref seen, 1);
                _target[index].To = ReadKey();
            }
            else if (Is("full_name"u8))
            {
                MarkSeen(ref seen, 2);
                _target[index].Body = ReadString();
            }
            else if (Is("first_name"u8))
            {
                MarkSeen(ref seen, 4);
                _target[index].ContextId = ReadString();
            }
            else
            {
                SkipProperty();
            }
        }
    }

    /// <summary>With the reader on an object (or null): its <c>timestamp</c> (0 when absent).</summary>
    private long ReadNestedTimestamp()
    {
        if (_reader.TokenType == JsonTokenType.Null)
        {
            return 0;
        }

        Expect(JsonTokenType.StartObject);
        long timestamp = 0;
        uint seen = 0;
        while (true)
        {
            Read();
            if (_reader.TokenType == JsonTokenType.EndObject)
            {
                return timestamp;
            }

            if (Is("timestamp"u8))
            {
                MarkSeen(ref seen, 1);
                timestamp = ReadTimestamp();
            }
            else
            {
                SkipProperty();
            }
        }
    }
}
