using System.Buffers;
using System.Security.Cryptography;
using System.Text.Encodings.Web;
using System.Text.Json;
using Memo.Ingest.Auth;
using Memo.Ingest.Configuration;
using Memo.Ingest.Webhooks.Parsing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Memo.Ingest.Outbox;

/// <summary>
/// <c>POST /v1/accounts/{phone_number_id}/messages</c> (a token with the <c>send</c> scope): queues a reply and answers
/// <c>202 {"id","message_id","state"}</c> once it is committed. The reply's message row (key <c>message_id</c>,
/// status <c>queued</c>) reaches the account's stream and sync pages through the sequencer like any webhook's record.
/// <c>Idempotency-Key</c> makes a retried POST return the first one's row instead of queuing a second reply.
/// </summary>
internal static class OutboxEndpoints
{
    public const int MaxIdempotencyKeyLength = 200;

    private static readonly JsonWriterOptions s_jsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static IEndpointRouteBuilder MapOutbox(this IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/accounts/{phone_number_id}/messages", static context => QueueAsync(context));
        return app;
    }

    private static async Task QueueAsync(HttpContext context)
    {
        string account = (string)context.Request.RouteValues["phone_number_id"]!;
        if (await ReadAuthorization.AuthorizeAsync(context, [account], AccessScope.Send) is null)
        {
            return;
        }

        string? key = context.Request.Headers["Idempotency-Key"].Count == 1 ? context.Request.Headers["Idempotency-Key"][0] : null;
        if (key is not null && (key.Length is 0 or > MaxIdempotencyKeyLength || key.Any(static c => c is < '!' or > '~')))
        {
            await ErrorAsync(context, StatusCodes.Status400BadRequest, "bad_idempotency_key",
                $"Idempotency-Key must be 1 to {MaxIdempotencyKeyLength} printable ASCII characters.");
            return;
        }

        byte[]? body = await ReadBodyAsync(context);
        if (body is null)
        {
            await ErrorAsync(context, StatusCodes.Status413PayloadTooLarge, "body_too_large",
                $"A message body is at most {OutboxRequest.MaxBodyBytes} bytes.");
            return;
        }

        if (OutboxRequest.TryParse(body, out string? problem) is not { } request)
        {
            await ErrorAsync(context, StatusCodes.Status400BadRequest, "bad_message", problem!);
            return;
        }

        OutboxOptions options = context.RequestServices.GetRequiredService<IOptions<OutboxOptions>>().Value;
        if (options.AccessTokenFor(account) is null)
        {
            await ErrorAsync(context, StatusCodes.Status422UnprocessableEntity, "no_access_token",
                "The gateway has no Cloud API access token for this account (Memo:Outbox:AccessToken or Memo:Outbox:Accounts).");
            return;
        }

        string hash = Convert.ToHexStringLower(SHA256.HashData(body));
        key ??= Guid.NewGuid().ToString("N");
        var dataSource = context.RequestServices.GetRequiredService<NpgsqlDataSource>();
        try
        {
            await using NpgsqlCommand queue = dataSource.CreateCommand(OutboxSql.Queue);
            queue.Parameters.Add(new NpgsqlParameter<string> { TypedValue = account });
            queue.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key });
            queue.Parameters.Add(new NpgsqlParameter<string> { TypedValue = request.To });
            queue.Parameters.Add(new NpgsqlParameter<string> { TypedValue = request.Type });
            queue.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = body });
            queue.Parameters.Add(new NpgsqlParameter<string> { TypedValue = hash });
            queue.Parameters.Add(new NpgsqlParameter<string?> { TypedValue = PhoneNumbers.Normalise(request.To), NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
            queue.Parameters.Add(new NpgsqlParameter<string?> { TypedValue = request.Text, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
            queue.Parameters.Add(new NpgsqlParameter<string?> { TypedValue = request.ContextId, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
            if (await queue.ExecuteScalarAsync(context.RequestAborted) is long id)
            {
                OutboxWakeup wakeup = context.RequestServices.GetRequiredService<OutboxWakeup>();
                wakeup.WakeSequencer();
                wakeup.WakeSender();
                await AnswerAsync(context, id, "queued", replayed: false);
                return;
            }

            // The key was used before: the same request gets the same answer; a different one under the key is refused.
            await using NpgsqlCommand find = dataSource.CreateCommand(OutboxSql.FindByKey);
            find.Parameters.Add(new NpgsqlParameter<string> { TypedValue = account });
            find.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key });
            await using NpgsqlDataReader row = await find.ExecuteReaderAsync(context.RequestAborted);
            if (!await row.ReadAsync(context.RequestAborted))
            {
                throw new InvalidOperationException("An idempotency key that conflicted has no row.");
            }

            if (row.GetString(2) != hash)
            {
                await ErrorAsync(context, StatusCodes.Status422UnprocessableEntity, "idempotency_key_reused",
                    "This Idempotency-Key was used for a different message.");
                return;
            }

            await AnswerAsync(context, row.GetInt64(0), row.GetString(1), replayed: true);
        }
        catch (NpgsqlException)
        {
            context.Response.Headers.RetryAfter = "1";
            await ErrorAsync(context, StatusCodes.Status503ServiceUnavailable, "unavailable", "The database is unavailable; retry with the same Idempotency-Key.");
        }
    }

    /// <summary>The body, or null when it is larger than <see cref="OutboxRequest.MaxBodyBytes"/>.</summary>
    private static async Task<byte[]?> ReadBodyAsync(HttpContext context)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        while (true)
        {
            Memory<byte> memory = buffer.GetMemory(4096);
            int read = await context.Request.Body.ReadAsync(memory, context.RequestAborted);
            if (read == 0)
            {
                return buffer.WrittenSpan.ToArray();
            }

            buffer.Advance(read);
            if (buffer.WrittenCount > OutboxRequest.MaxBodyBytes)
            {
                return null;
            }
        }
    }

    private static async Task AnswerAsync(HttpContext context, long id, string state, bool replayed)
    {
        context.Response.StatusCode = StatusCodes.Status202Accepted;
        context.Response.ContentType = "application/json";
        if (replayed)
        {
            context.Response.Headers["Idempotent-Replayed"] = "true";
        }

        await using var json = new Utf8JsonWriter(context.Response.BodyWriter, s_jsonOptions);
        json.WriteStartObject();
        json.WriteNumber("id", id);
        json.WriteString("message_id", OutboxMessageKey.For(id));
        json.WriteString("state", state);
        json.WriteEndObject();
        await json.FlushAsync(context.RequestAborted);
    }

    private static async Task ErrorAsync(HttpContext context, int status, string code, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await using var json = new Utf8JsonWriter(context.Response.BodyWriter, s_jsonOptions);
        json.WriteStartObject();
        json.WriteString("error", code);
        json.WriteString("message", message);
        json.WriteEndObject();
        await json.FlushAsync(context.RequestAborted);
    }
}
