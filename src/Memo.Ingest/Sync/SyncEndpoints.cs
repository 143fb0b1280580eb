using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using Memo.Ingest.Auth;
using Memo.Ingest.Observability;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Npgsql;

namespace Memo.Ingest.Sync;

/// <summary>
/// <c>GET /v1/accounts/{phone_number_id}/{messages|conversations|contacts}?since_seq=N&amp;limit=M</c>, answering
/// <c>{"items":[…],"latest_seq":…,"has_more":…}</c> in seq order (docs/API.md). JSON is written with
/// <see cref="Utf8JsonWriter"/> straight from the data reader: no reflection, so it is Native-AOT safe.
/// </summary>
internal static class SyncEndpoints
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 1000;

    // Responses are application/json, never HTML: non-ASCII text (emoji, RTL scripts) is written as UTF-8, not \u escapes.
    private static readonly JsonWriterOptions s_jsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static IEndpointRouteBuilder MapSyncApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/v1/accounts/{phone_number_id}/messages", static context => PageAsync(context, SyncCollection.Messages));
        app.MapGet("/v1/accounts/{phone_number_id}/conversations", static context => PageAsync(context, SyncCollection.Conversations));
        app.MapGet("/v1/accounts/{phone_number_id}/contacts", static context => PageAsync(context, SyncCollection.Contacts));
        app.MapGet("/v1/accounts/{phone_number_id}/contact_book", static context => PageAsync(context, SyncCollection.ContactBook));
        app.MapGet("/v1/accounts/{phone_number_id}/history", static context => HistoryAsync(context));
        return app;
    }

    private static async Task PageAsync(HttpContext context, SyncCollection collection)
    {
        string account = (string)context.Request.RouteValues["phone_number_id"]!;
        if (await ReadAuthorization.AuthorizeAsync(context, [account]) is null)
        {
            return;
        }

        if (!TryReadQuery(context.Request.Query, out long sinceSeq, out int limit, out string? error))
        {
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync($$"""{"error":"bad_query","message":"{{error}}"}""");
            return;
        }

        var dataSource = context.RequestServices.GetRequiredService<NpgsqlDataSource>();
        await using NpgsqlCommand command = dataSource.CreateCommand(collection switch
        {
            SyncCollection.Messages => SyncQueries.Messages,
            SyncCollection.Conversations => SyncQueries.Conversations,
            SyncCollection.ContactBook => SyncQueries.ContactBook,
            _ => SyncQueries.Contacts,
        });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = account });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = sinceSeq });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit + 1 });

        NpgsqlDataReader? reader = await ExecuteOrAnswerUnavailableAsync(context, command);
        if (reader is null)
        {
            return;
        }

        await using (reader)
        {
            bool row = await reader.ReadAsync(context.RequestAborted);
            if (row && ExpiredCursor(reader, sinceSeq) is long oldestSeq)
            {
                context.RequestServices.GetRequiredService<IngestMetrics>().CursorExpired("sync");
                await AnswerCursorExpiredAsync(context, sinceSeq, oldestSeq);
                return;
            }

            context.Response.ContentType = "application/json";
            await using var json = new Utf8JsonWriter(context.Response.BodyWriter, s_jsonOptions);
            json.WriteStartObject();
            json.WriteStartArray("items");
            long latestSeq = 0;
            long lastItemSeq = 0;
            int count = 0;
            bool hasMore = false;
            for (; row; row = await reader.ReadAsync(context.RequestAborted))
            {
                latestSeq = reader.GetInt64(0);
                if (reader.IsDBNull(1))
                {
                    continue;
                }

                if (++count > limit)
                {
                    hasMore = true;
                    break;
                }

                lastItemSeq = reader.GetInt64(1);

                switch (collection)
                {
                    case SyncCollection.Messages: SyncItemWriter.WriteMessage(json, reader); break;
                    case SyncCollection.Conversations: SyncItemWriter.WriteConversation(json, reader); break;
                    case SyncCollection.ContactBook: SyncItemWriter.WriteContactBookEntry(json, reader); break;
                    default: SyncItemWriter.WriteContact(json, reader); break;
                }

                if (json.BytesPending > 16 * 1024)
                {
                    await json.FlushAsync(context.RequestAborted);
                }
            }

            json.WriteEndArray();
            // latest_seq is the cursor to continue from: the page's last item while more follow (the account's latest
            // seq would skip the rows between), else the account's latest seq in this snapshot (every seq up to it
            // is visible, as seqs commit in order, and none of them belongs to this collection past the last item).
            json.WriteNumber("latest_seq", hasMore ? lastItemSeq : Math.Max(latestSeq, lastItemSeq));
            json.WriteBoolean("has_more", hasMore);
            json.WriteEndObject();
            await json.FlushAsync(context.RequestAborted);
        }
    }

    /// <summary>
    /// The oldest seq the account's event log still holds when it is past <paramref name="sinceSeq"/> + 1: events the
    /// client has not seen were dropped (retention, docs/OPERATIONS.md), so continuing from its cursor would skip them.
    /// Null when the cursor can continue; a cursor of 0 (a first read) always can, and reads what is retained.
    /// </summary>
    private static long? ExpiredCursor(NpgsqlDataReader reader, long sinceSeq)
    {
        int oldestAt = reader.FieldCount - 1;
        if (sinceSeq == 0 || reader.IsDBNull(oldestAt))
        {
            return null;
        }

        long oldest = reader.GetInt64(oldestAt);
        return oldest - 1 > sinceSeq ? oldest : null;
    }

    private static Task AnswerCursorExpiredAsync(HttpContext context, long sinceSeq, long oldestSeq)
    {
        context.Response.StatusCode = StatusCodes.Status410Gone;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(string.Create(CultureInfo.InvariantCulture,
            $$"""{"error":"cursor_expired","message":"Events after seq {{sinceSeq}} are no longer kept (the oldest is {{oldestSeq}}); read the collection again from since_seq=0.","oldest_seq":{{oldestSeq}}}"""));
    }

    /// <summary>
    /// <c>GET /v1/accounts/{id}/history</c>: the history backfill's state (<c>null</c> until a history webhook
    /// arrives), its progress (the highest seen, 0-100), the last chunk's phase and order, a refusal's errors, and
    /// <c>seq</c>, the event that last changed it.
    /// </summary>
    private static async Task HistoryAsync(HttpContext context)
    {
        string account = (string)context.Request.RouteValues["phone_number_id"]!;
        if (await ReadAuthorization.AuthorizeAsync(context, [account]) is null)
        {
            return;
        }

        var dataSource = context.RequestServices.GetRequiredService<NpgsqlDataSource>();
        await using NpgsqlCommand command = dataSource.CreateCommand(SyncQueries.History);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = account });
        NpgsqlDataReader? reader = await ExecuteOrAnswerUnavailableAsync(context, command);
        if (reader is null)
        {
            return;
        }

        await using (reader)
        {
            context.Response.ContentType = "application/json";
            await using var json = new Utf8JsonWriter(context.Response.BodyWriter, s_jsonOptions);
            if (await reader.ReadAsync(context.RequestAborted))
            {
                json.WriteStartObject();
                json.WriteString("account", account);
                json.WritePropertyName("seq");
                if (reader.IsDBNull(0))
                {
                    json.WriteNullValue();
                }
                else
                {
                    json.WriteNumberValue(reader.GetInt64(0));
                }

                json.WritePropertyName("history");
                SyncItemWriter.WriteHistory(json, reader, 1);
                json.WriteEndObject();
            }
            else
            {
                json.WriteStartObject();
                json.WriteString("account", account);
                json.WriteNull("seq");
                json.WritePropertyName("history");
                json.WriteStartObject();
                json.WriteNull("state");
                json.WriteEndObject();
                json.WriteEndObject();
            }

            await json.FlushAsync(context.RequestAborted);
        }
    }

    /// <summary>Runs the page's query; with the database down, answers 503 with Retry-After and returns null.</summary>
    private static async Task<NpgsqlDataReader?> ExecuteOrAnswerUnavailableAsync(HttpContext context, NpgsqlCommand command)
    {
        try
        {
            return await command.ExecuteReaderAsync(context.RequestAborted);
        }
        catch (NpgsqlException)
        {
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            context.Response.Headers.RetryAfter = "1";
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"error":"unavailable","message":"The database is unavailable; retry later."}""");
            return null;
        }
    }

    private static bool TryReadQuery(IQueryCollection query, out long sinceSeq, out int limit, out string? error)
    {
        sinceSeq = 0;
        limit = DefaultLimit;
        error = null;
        string? since = query["since_seq"];
        if (!string.IsNullOrEmpty(since) && (!long.TryParse(since, NumberStyles.None, CultureInfo.InvariantCulture, out sinceSeq)))
        {
            error = "since_seq must be a non-negative integer.";
            return false;
        }

        string? limitText = query["limit"];
        if (!string.IsNullOrEmpty(limitText) &&
            (!int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit < 1 || limit > MaxLimit))
        {
            error = $"limit must be an integer from 1 to {MaxLimit}.";
            return false;
        }

        return true;
    }
}
