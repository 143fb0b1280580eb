using System.Buffers;
using System.Text.Json;
using Npgsql;

namespace Memo.Ingest.Sync;

/// <summary>
/// Writes one sync item from a row whose item columns start at ordinal <c>at</c>: 1 for <see cref="SyncQueries"/>
/// (column 0 is latest_seq); the live streams' event query puts the three kinds side by side.
/// </summary>
internal static class SyncItemWriter
{
    public static void WriteMessage(Utf8JsonWriter json, NpgsqlDataReader row, int at = 1)
    {
        json.WriteStartObject();
        json.WriteNumber("seq", row.GetInt64(at));
        json.WriteString("wamid", row.GetString(at + 1));
        json.WriteString("direction", row.GetString(at + 2));
        WriteNullableString(json, "from", row, at + 3);
        WriteNullableString(json, "to", row, at + 4);
        WriteNullableInt64(json, "timestamp", row, at + 5);
        WriteNullableString(json, "type", row, at + 6);
        WriteNullableString(json, "text", row, at + 7);
        WriteNullableString(json, "context_id", row, at + 8);
        WriteNullableString(json, "status", row, at + 9);
        WriteNullableInt64(json, "status_timestamp", row, at + 10);
        WriteNullableRaw(json, "status_errors", row, at + 11);
        WriteNullableRaw(json, "payload", row, at + 12);
        // Coexistence: where the message came from (live, echo from the Business app, history backfill) and the
        // conversation it belongs to. "history" is there so that bots can skip history without knowing the origins.
        string origin = row.IsDBNull(at + 13) ? "live" : row.GetString(at + 13);
        json.WriteString("origin", origin);
        json.WriteBoolean("history", origin == "history");
        WriteNullableString(json, "contact", row, at + 14);
        // Edits and revokes (coexistence numbers) change what the original shows: its newest edited text, revoked.
        WriteNullableString(json, "edited_text", row, at + 15);
        json.WriteBoolean("revoked", !row.IsDBNull(at + 16) && row.GetBoolean(at + 16));
        // A reply sent through the outbox (origin "outbox", wamid memo.outbox.<id>): the wamid Meta gave it.
        WriteNullableString(json, "sent_wamid", row, at + 17);
        json.WriteEndObject();
    }

    public static void WriteConversation(Utf8JsonWriter json, NpgsqlDataReader row, int at = 1)
    {
        json.WriteStartObject();
        json.WriteNumber("seq", row.GetInt64(at));
        json.WriteString("wa_id", row.GetString(at + 1));
        WriteNullableString(json, "profile_name", row, at + 2);
        json.WriteNumber("message_count", row.GetInt64(at + 3));
        json.WriteStartObject("last_message");
        WriteNullableString(json, "wamid", row, at + 4);
        WriteNullableInt64(json, "timestamp", row, at + 5);
        WriteNullableString(json, "type", row, at + 6);
        WriteNullableString(json, "preview", row, at + 7);
        json.WriteEndObject();
        json.WriteNumber("unread_count", row.IsDBNull(at + 8) ? 0 : row.GetInt64(at + 8));
        json.WriteEndObject();
    }

    public static void WriteContact(Utf8JsonWriter json, NpgsqlDataReader row, int at = 1)
    {
        json.WriteStartObject();
        json.WriteNumber("seq", row.GetInt64(at));
        json.WriteString("wa_id", row.GetString(at + 1));
        WriteNullableString(json, "profile_name", row, at + 2);
        json.WriteEndObject();
    }

    /// <summary>An entry of the phone's contact book (coexistence numbers).</summary>
    public static void WriteContactBookEntry(Utf8JsonWriter json, NpgsqlDataReader row, int at = 1)
    {
        json.WriteStartObject();
        json.WriteNumber("seq", row.GetInt64(at));
        json.WriteString("contact", row.GetString(at + 1));
        json.WriteString("phone_number", row.GetString(at + 2));
        WriteNullableString(json, "full_name", row, at + 3);
        WriteNullableString(json, "first_name", row, at + 4);
        json.WriteBoolean("removed", row.GetBoolean(at + 5));
        json.WriteNumber("timestamp", row.GetInt64(at + 6));
        json.WriteEndObject();
    }

    /// <summary>
    /// The state of an account's history backfill: receiving → completed | declined (the numbers are bigint columns).
    /// </summary>
    public static void WriteHistory(Utf8JsonWriter json, NpgsqlDataReader row, int at)
    {
        json.WriteStartObject();
        WriteNullableString(json, "state", row, at);
        WriteNullableInt64(json, "progress", row, at + 1);
        WriteNullableInt64(json, "phase", row, at + 2);
        WriteNullableInt64(json, "chunk_order", row, at + 3);
        WriteNullableRaw(json, "errors", row, at + 4);
        json.WriteEndObject();
    }

    private static void WriteNullableString(Utf8JsonWriter json, string name, NpgsqlDataReader row, int ordinal)
    {
        if (row.IsDBNull(ordinal))
        {
            json.WriteNull(name);
        }
        else
        {
            json.WriteString(name, row.GetString(ordinal));
        }
    }

    private static void WriteNullableInt64(Utf8JsonWriter json, string name, NpgsqlDataReader row, int ordinal)
    {
        if (row.IsDBNull(ordinal))
        {
            json.WriteNull(name);
        }
        else
        {
            json.WriteNumber(name, row.GetInt64(ordinal));
        }
    }

    /// <summary>
    /// The raw JSON kept as bytea (exactly as Meta sent it, validated by the parser on the way in) is embedded as is,
    /// through a pooled buffer: no string or array per value.
    /// </summary>
    private static void WriteNullableRaw(Utf8JsonWriter json, string name, NpgsqlDataReader row, int ordinal)
    {
        json.WritePropertyName(name);
        if (row.IsDBNull(ordinal))
        {
            json.WriteNullValue();
            return;
        }

        int length = checked((int)row.GetBytes(ordinal, 0, null, 0, 0));
        byte[] buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            int read = checked((int)row.GetBytes(ordinal, 0, buffer, 0, length));
            json.WriteRawValue(buffer.AsSpan(0, read), skipInputValidation: true);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
