using System.Net.WebSockets;
using System.Text.Json;
using Memo.Ingest.Auth;
using Memo.Ingest.Observability;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Memo.Ingest.Streams;

/// <summary>
/// <c>GET /v1/stream/sse</c> and <c>GET /v1/stream/ws</c> (WebSocket upgrade), both with
/// <c>?accounts=PN1,PN2</c> and an optional <c>&amp;since=PN1:42,PN2:7</c> (SSE: or the <c>Last-Event-ID</c> header);
/// an account without a cursor starts at its latest seq (live only). Shapes: docs/API.md.
/// </summary>
internal static class StreamEndpoints
{
    public const string SsePath = "/v1/stream/sse";
    public const string WebSocketPath = "/v1/stream/ws";

    private const string LastAccountsQuery = "SELECT phone_number_id, last_seq FROM accounts WHERE phone_number_id = ANY($1)";

    // Cursors whose next events are no longer in the log (old events dropped, docs/OPERATIONS.md "Retention"), with
    // the oldest seq each such account's log holds. $1 accounts, $2 their cursors.
    private const string ExpiredCursorsQuery = """
        SELECT c.account, e.seq
        FROM unnest($1::text[], $2::bigint[]) AS c(account, since)
        CROSS JOIN LATERAL (SELECT seq FROM account_events WHERE account = c.account ORDER BY seq LIMIT 1) e
        WHERE c.since > 0 AND e.seq - 1 > c.since
        """;

    /// <summary>
    /// Before the WebSocket middleware: stream WebSockets get a connection that sends the events ready at once in one
    /// write (<see cref="CoalescingUpgradeStream"/>).
    /// </summary>
    public static IApplicationBuilder UseCoalescingStreamWebSockets(this IApplicationBuilder app) => app.Use(static (context, next) =>
    {
        if (context.Request.Path.Equals(WebSocketPath, StringComparison.Ordinal) && context.Features.Get<IHttpUpgradeFeature>() is { IsUpgradableRequest: true } upgrade)
        {
            context.Features.Set<IHttpUpgradeFeature>(new CoalescingUpgradeStream.UpgradeFeature(upgrade));
        }

        return next(context);
    });

    public static IEndpointRouteBuilder MapStreams(this IEndpointRouteBuilder app)
    {
        app.MapGet(SsePath, static context => RunAsync(context, webSocket: false));
        app.MapGet(WebSocketPath, static context => RunAsync(context, webSocket: true));
        return app;
    }

    private static async Task RunAsync(HttpContext context, bool webSocket)
    {
        if (webSocket && !context.WebSockets.IsWebSocketRequest)
        {
            await RefuseAsync(context, StatusCodes.Status400BadRequest, "websocket_expected", "This endpoint takes a WebSocket upgrade request.");
            return;
        }

        var hub = context.RequestServices.GetRequiredService<StreamHub>();
        var cursors = new Dictionary<string, long>(StringComparer.Ordinal);
        string? accountsText = context.Request.Query["accounts"];
        string[] accounts = accountsText?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [];
        string? since = webSocket ? context.Request.Query["since"] : context.Request.Headers["Last-Event-ID"].FirstOrDefault() ?? context.Request.Query["since"];
        if (accounts.Length == 0 || accounts.Length > hub.Options.MaxAccountsPerConnection || !StreamCursors.TryParse(since, cursors)
            || cursors.Keys.Any(account => !accounts.Contains(account, StringComparer.Ordinal)))
        {
            await RefuseAsync(context, StatusCodes.Status400BadRequest, "bad_stream_request",
                $"Give accounts=PN1,PN2 (1 to {hub.Options.MaxAccountsPerConnection}) and optionally since=PN1:SEQ,PN2:SEQ for those accounts.");
            return;
        }

        AccessGrant? grant = await ReadAuthorization.AuthorizeAsync(context, accounts);
        if (grant is null)
        {
            return;
        }

        if (!hub.TryAdmit())
        {
            context.Response.Headers.RetryAfter = "5";
            await RefuseAsync(context, StatusCodes.Status503ServiceUnavailable, "too_many_connections", "This instance is at its stream connection limit.");
            return;
        }

        var metrics = context.RequestServices.GetRequiredService<IngestMetrics>();
        string transportName = webSocket ? "websocket" : "sse";
        metrics.StreamOpened(transportName);
        try
        {
            var dataSource = context.RequestServices.GetRequiredService<NpgsqlDataSource>();
            Dictionary<string, long>? expired = await FindExpiredCursorsAsync(dataSource, cursors, context.RequestAborted);
            if (expired is null || !await StartAtLatestAsync(dataSource, accounts, cursors, context.RequestAborted))
            {
                await RefuseAsync(context, StatusCodes.Status503ServiceUnavailable, "unavailable", "The database is unavailable; retry later.");
                return;
            }

            if (expired.Count > 0)
            {
                metrics.CursorExpired(transportName);
                await RefuseExpiredAsync(context, expired);
                return;
            }

            CancellationToken stopping = context.RequestServices.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
            var session = new StreamSession(cursors, hub.Options, metrics, transportName, grant.Expires,
                context.RequestServices.GetRequiredService<ILogger<StreamSession>>());
            if (webSocket)
            {
                await RunWebSocketAsync(context, hub, dataSource, session, stopping);
            }
            else
            {
                await RunSseAsync(context, hub, dataSource, session, stopping);
            }

            if (session.Overflowed)
            {
                metrics.StreamCutOff(transportName);
            }
        }
        finally
        {
            metrics.StreamClosed(transportName);
            hub.Release();
        }
    }

    private static async Task RunSseAsync(HttpContext context, StreamHub hub, NpgsqlDataSource dataSource, StreamSession session, CancellationToken stopping)
    {
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        context.Response.Headers["X-Accel-Buffering"] = "no";
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping);
        try
        {
            await session.RunAsync(hub, dataSource, new SseTransport(context), ended.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            // The client left or the server is stopping.
        }
    }

    private static async Task RunWebSocketAsync(HttpContext context, StreamHub hub, NpgsqlDataSource dataSource, StreamSession session, CancellationToken stopping)
    {
        bool messagePack = context.WebSockets.WebSocketRequestedProtocols.Contains(WebSocketTransport.MessagePackSubprotocol);
        // On our upgrade stream the session pings the client from the hub's clock; the runtime's keep-alive (a timer per
        // connection, docs/DECISIONS.md 36) stays only for a connection without it.
        var upgrade = context.Features.Get<IHttpUpgradeFeature>() as CoalescingUpgradeStream.UpgradeFeature;
        using WebSocket socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext
        {
            SubProtocol = messagePack ? WebSocketTransport.MessagePackSubprotocol : null,
            KeepAliveInterval = upgrade is not null ? TimeSpan.Zero : null,
        });
        CoalescingUpgradeStream? coalescing = upgrade?.Stream;
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping);
        // The receive loop is never cancelled (a cancelled WebSocket receive aborts the socket, and a close frame
        // could no longer be sent); it ends with the client's close frame, or when the socket is aborted below.
        Task receiving = DrainIncomingAsync(socket, ended);
        var transport = new WebSocketTransport(socket, messagePack, coalescing);
        try
        {
            await session.RunAsync(hub, dataSource, transport, ended.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or IOException or ObjectDisposedException)
        {
            // The client left, the server is stopping, or the session clock aborted an unresponsive client (a ping
            // then finds the connection disposed).
        }

        using (var closing = new CancellationTokenSource(TimeSpan.FromSeconds(2)))
        {
            await transport.CloseAsync(stopping.IsCancellationRequested ? "shutdown" : "closed", closing.Token);
        }

        // Wait for the client's close frame (it may still be reading a backlog, then its resync) before the
        // connection is dropped, so nothing written is lost to a reset. On shutdown, only briefly.
        TimeSpan closeWait = stopping.IsCancellationRequested ? TimeSpan.FromSeconds(2) : TimeSpan.FromSeconds(Math.Max(1, hub.Options.ResyncGraceSeconds));
        try
        {
            await receiving.WaitAsync(closeWait, CancellationToken.None);
        }
        catch (TimeoutException)
        {
        }

        await ended.CancelAsync();
        if (!receiving.IsCompleted)
        {
            socket.Abort();
        }

        await receiving;
    }

    /// <summary>Clients send nothing but close frames (and pongs); reading them is how a close or a dead peer is noticed.</summary>
    private static async Task DrainIncomingAsync(WebSocket socket, CancellationTokenSource ended)
    {
        byte[] buffer = new byte[1024];
        try
        {
            while (socket.State == WebSocketState.Open)
            {
                WebSocketReceiveResult result = await socket.ReceiveAsync(buffer, CancellationToken.None);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    break;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or IOException)
        {
        }

        await ended.CancelAsync();
    }

    /// <summary>
    /// The accounts whose cursor can no longer be continued without a gap, each with the oldest seq its event log
    /// holds (empty when every cursor can); null when the database is unreachable. A cursor of 0 always continues.
    /// </summary>
    private static async Task<Dictionary<string, long>?> FindExpiredCursorsAsync(NpgsqlDataSource dataSource, Dictionary<string, long> cursors, CancellationToken cancellationToken)
    {
        var expired = new Dictionary<string, long>(StringComparer.Ordinal);
        if (cursors.Count == 0 || cursors.Values.All(static since => since == 0))
        {
            return expired;
        }

        try
        {
            await using NpgsqlCommand command = dataSource.CreateCommand(ExpiredCursorsQuery);
            command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. cursors.Keys] });
            command.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = [.. cursors.Values] });
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                expired[reader.GetString(0)] = reader.GetInt64(1);
            }
        }
        catch (NpgsqlException)
        {
            return null;
        }

        return expired;
    }

    /// <summary>
    /// 410 before the stream starts: replaying from these cursors would skip dropped events. The client reads the
    /// collections again from <c>since_seq=0</c> and then follows the accounts from their <c>latest_seq</c>.
    /// </summary>
    private static async Task RefuseExpiredAsync(HttpContext context, Dictionary<string, long> expired)
    {
        context.Response.StatusCode = StatusCodes.Status410Gone;
        context.Response.ContentType = "application/json";
        await using var json = new Utf8JsonWriter(context.Response.BodyWriter);
        json.WriteStartObject();
        json.WriteString("error", "cursor_expired");
        json.WriteString("message", "Events after these cursors are no longer kept; read the accounts again through the sync API from since_seq=0, then stream from its latest_seq.");
        json.WriteStartObject("oldest_seq");
        foreach ((string account, long oldest) in expired)
        {
            json.WriteNumber(account, oldest);
        }

        json.WriteEndObject();
        json.WriteEndObject();
        await json.FlushAsync(context.RequestAborted);
    }

    /// <summary>Accounts the client gave no cursor for start at their latest seq: live from now on.</summary>
    private static async Task<bool> StartAtLatestAsync(NpgsqlDataSource dataSource, string[] accounts, Dictionary<string, long> cursors, CancellationToken cancellationToken)
    {
        string[] missing = [.. accounts.Where(account => !cursors.ContainsKey(account))];
        if (missing.Length == 0)
        {
            return true;
        }

        try
        {
            await using NpgsqlCommand command = dataSource.CreateCommand(LastAccountsQuery);
            command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = missing });
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                cursors[reader.GetString(0)] = reader.GetInt64(1);
            }
        }
        catch (NpgsqlException)
        {
            return false;
        }

        foreach (string account in missing)
        {
            cursors.TryAdd(account, 0);
        }

        return true;
    }

    private static Task RefuseAsync(HttpContext context, int statusCode, string code, string message)
    {
        context.Response.StatusCode = statusCode;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync($$"""{"error":"{{code}}","message":"{{message}}"}""");
    }
}
