using System.Text.Json;
using Npgsql;

namespace Memo.Ingest.Sync;

/// <summary>Writes one sync item from a row of <see cref="SyncQueries"/> (column 0 is latest_seq).</summary>
internal static class SyncItemWriter
{
    public static void WriteMessage(Utf8JsonWriter json, NpgsqlDataReader row)
    {
        json.WriteStartObject();
        json.WriteNumber("seq", row.GetInt64(1));
        json.WriteString("wamid", row.GetString(2));
        json.WriteString("direction", row.GetString(3));
        WriteNullableString(json, "from", row, 4);
        WriteNullableString(json, "to", row, 5);
        WriteNullableInt64(json, "timestamp", row, 6);
        WriteNullableString(json, "type", row, 7);
        WriteNullableString(json, "text", row, 8);
        WriteNullableString(json, "context_id", row, 9);
        WriteNullableString(json, "status", row, 10);
        WriteNullableInt64(json, "status_timestamp", row, 11);
        WriteNullableRaw(json, "status_errors", row, 12);
        WriteNullableRaw(json, "payload", row, 13);
        json.WriteEndObject();
    }

    public static void WriteConversation(Utf8JsonWriter json, NpgsqlDataReader row)
    {
        json.WriteStartObject();
        json.WriteNumber("seq", row.GetInt64(1));
        json.WriteString("wa_id", row.GetString(2));
        WriteNullableString(json, "profile_name", row, 3);
        json.WriteNumber("message_count", row.GetInt64(4));
        json.WriteStartObject("last_message");
        WriteNullableString(json, "wamid", row, 5);
        WriteNullableInt64(json, "timestamp", row, 6);
        WriteNullableString(json, "type", row, 7);
        WriteNullableString(json, "preview", row, 8);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    public static void WriteContact(Utf8JsonWriter json, NpgsqlDataReader row)
    {
        json.WriteStartObject();
        json.WriteNumber("seq", row.GetInt64(1));
        json.WriteString("wa_id", row.GetString(2));
        WriteNullableString(json, "profile_name", row, 3);
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

    /// <summary>jsonb read as text is already valid JSON: it is embedded as is.</summary>
    private static void WriteNullableRaw(Utf8JsonWriter json, string name, NpgsqlDataReader row, int ordinal)
    {
        json.WritePropertyName(name);
        if (row.IsDBNull(ordinal))
        {
            json.WriteNullValue();
        }
        else
        {
            json.WriteRawValue(row.GetString(ordinal), skipInputValidation: true);
        }
    }
}
