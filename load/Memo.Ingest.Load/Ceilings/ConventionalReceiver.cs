using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Memo.Ingest.Load.Ceilings;

/// <summary>
/// The baseline every claim of the write path is measured against: a webhook receiver built the way hand-made
/// WhatsApp receivers are (an Express + pg handler, ported to Kestrel + Npgsql): read the body, check the HMAC, parse
/// it into a DOM, and run one autocommit INSERT per message into a table with a BIGSERIAL key and a unique wamid index
/// (ON CONFLICT DO NOTHING drops Meta's retries), then answer 200. No batching, no queue, no Redis. It runs as its own
/// process (<c>Memo.Ingest.Load conventional-receiver</c>) so that its CPU is its own, like the gateway's.
/// </summary>
internal static class ConventionalReceiver
{
    private const string Schema = """
        CREATE TABLE IF NOT EXISTS received_messages (
            id              bigserial PRIMARY KEY,
            phone_number_id text NOT NULL,
            wamid           text NOT NULL UNIQUE,
            from_number     text,
            ts              bigint,
            type            text,
            body            text,
            payload         jsonb NOT NULL,
            received_at     timestamptz NOT NULL DEFAULT now());
        CREATE TABLE IF NOT EXISTS received_statuses (
            id              bigserial PRIMARY KEY,
            phone_number_id text NOT NULL,
            wamid           text NOT NULL,
            status          text NOT NULL,
            ts              bigint,
            payload         jsonb NOT NULL,
            received_at     timestamptz NOT NULL DEFAULT now());
        CREATE INDEX IF NOT EXISTS received_statuses_wamid ON received_statuses (wamid);
        """;

    private const string InsertMessage = """
        INSERT INTO received_messages (phone_number_id, wamid, from_number, ts, type, body, payload)
        VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) ON CONFLICT (wamid) DO NOTHING
        """;

    private const string InsertStatus = """
        INSERT INTO received_statuses (phone_number_id, wamid, status, ts, payload) VALUES ($1, $2, $3, $4, $5::jsonb)
        """;

    public static async Task<int> RunAsync(int port, string connectionString, string secret)
    {
        await using NpgsqlDataSource database = NpgsqlDataSource.Create(connectionString);
        await using (NpgsqlCommand create = database.CreateCommand(Schema))
        {
            await create.ExecuteNonQueryAsync();
        }

        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Logging.ClearProviders();
        WebApplication app = builder.Build();
        byte[] key = Encoding.UTF8.GetBytes(secret);
        app.MapGet("/healthz", static () => "ok");
        app.MapPost("/webhooks/whatsapp", async context =>
        {
            using var buffer = new MemoryStream();
            await context.Request.Body.CopyToAsync(buffer);
            byte[] body = buffer.ToArray();
            string header = context.Request.Headers["X-Hub-Signature-256"].ToString();
            byte[] expected = Encoding.ASCII.GetBytes("sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(key, body)));
            if (!CryptographicOperations.FixedTimeEquals(expected, Encoding.ASCII.GetBytes(header)))
            {
                context.Response.StatusCode = 401;
                return;
            }

            using JsonDocument document = JsonDocument.Parse(body);
            foreach (JsonElement entry in document.RootElement.GetProperty("entry").EnumerateArray())
            {
                foreach (JsonElement change in entry.GetProperty("changes").EnumerateArray())
                {
                    JsonElement value = change.GetProperty("value");
                    if (!value.TryGetProperty("metadata", out JsonElement metadata))
                    {
                        continue;
                    }

                    string account = metadata.GetProperty("phone_number_id").GetString()!;
                    if (value.TryGetProperty("messages", out JsonElement messages))
                    {
                        foreach (JsonElement message in messages.EnumerateArray())
                        {
                            await using NpgsqlCommand insert = database.CreateCommand(InsertMessage);
                            insert.Parameters.Add(new NpgsqlParameter { Value = account });
                            insert.Parameters.Add(new NpgsqlParameter { Value = message.GetProperty("id").GetString() });
                            insert.Parameters.Add(new NpgsqlParameter { Value = Text(message, "from") });
                            insert.Parameters.Add(new NpgsqlParameter { Value = long.Parse(message.GetProperty("timestamp").GetString()!, System.Globalization.CultureInfo.InvariantCulture) });
                            insert.Parameters.Add(new NpgsqlParameter { Value = Text(message, "type") });
                            insert.Parameters.Add(new NpgsqlParameter
                            {
                                Value = message.TryGetProperty("text", out JsonElement text) ? (object?)Text(text, "body") ?? DBNull.Value : DBNull.Value,
                            });
                            insert.Parameters.Add(new NpgsqlParameter { Value = message.GetRawText() });
                            await insert.ExecuteNonQueryAsync();
                        }
                    }

                    if (value.TryGetProperty("statuses", out JsonElement statuses))
                    {
                        foreach (JsonElement status in statuses.EnumerateArray())
                        {
                            await using NpgsqlCommand insert = database.CreateCommand(InsertStatus);
                            insert.Parameters.Add(new NpgsqlParameter { Value = account });
                            insert.Parameters.Add(new NpgsqlParameter { Value = status.GetProperty("id").GetString() });
                            insert.Parameters.Add(new NpgsqlParameter { Value = status.GetProperty("status").GetString() });
                            insert.Parameters.Add(new NpgsqlParameter { Value = long.Parse(status.GetProperty("timestamp").GetString()!, System.Globalization.CultureInfo.InvariantCulture) });
                            insert.Parameters.Add(new NpgsqlParameter { Value = status.GetRawText() });
                            await insert.ExecuteNonQueryAsync();
                        }
                    }
                }
            }

            context.Response.StatusCode = 200;
        });
        await app.RunAsync();
        return 0;
    }

    private static object Text(JsonElement element, string name) =>
        element.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.String ? value.GetString()! : DBNull.Value;
}
