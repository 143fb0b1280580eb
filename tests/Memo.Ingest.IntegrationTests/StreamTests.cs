using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using Memo.Ingest.TestSupport;
using Npgsql;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>Live streams over SSE and WebSocket: completeness, order, resume, scope and slow consumers.</summary>
[Collection(PostgresCollection.Name)]
public sealed class StreamTests(PostgresFixture postgres)
{
    [Fact]
    public async Task SseAndWebSocketClients_OnTwoInstances_ReceiveEveryEventOnceInSeqOrder()
    {
        string database = await postgres.Server.CreateDatabaseAsync("streams");
        await using RedisServer redis = await RedisServer.StartAsync();
        await using GatewayHost a = await RedisDeduplicationTests.StartWithRedisAsync(database, redis);
        await using GatewayHost b = await RedisDeduplicationTests.StartWithRedisAsync(database, redis);
        string[] accounts = ["PNs1", "PNs2", "PNs3"];
        string token = GatewayHost.MintToken(accounts);

        // Connected before anything exists, from seq 0: everything they receive is live or replayed by the hand-off.
        await using StreamClient sseOnA = await StreamClient.OpenSseAsync(a.Address, token, "PNs1,PNs2", since: "PNs1:0,PNs2:0");
        await using StreamClient wsOnB = await StreamClient.OpenWebSocketAsync(b.Address, token, "PNs1,PNs2,PNs3");
        await sseOnA.WaitForAsync(static m => m.Any(static x => x.Type == "ready"), "SSE ready");
        await wsOnB.WaitForAsync(static m => m.Any(static x => x.Type == "ready"), "WebSocket ready");

        await LiveEventTests.SendConcurrentlyAsync(a, accounts, messagesPerAccount: 30);

        await AssertEveryLoggedEventOnceAsync(database, sseOnA, ["PNs1", "PNs2"], after: 0);
        await AssertEveryLoggedEventOnceAsync(database, wsOnB, accounts, after: 0);
        Assert.Null(sseOnA.Failure);
        Assert.Null(wsOnB.Failure);
    }

    [Fact]
    public async Task AClientThatDisconnectsDuringIngest_ResumesFromItsCursor_WithNoGapAndNoDuplicate()
    {
        string database = await postgres.Server.CreateDatabaseAsync("streams_resume");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database);
        string[] accounts = ["PNr1", "PNr2"];
        string token = GatewayHost.MintToken(accounts);
        using var stop = new CancellationTokenSource();
        Task ingest = Task.Run(async () =>
        {
            for (int round = 0; !stop.IsCancellationRequested; round++)
            {
                await LiveEventTests.SendConcurrentlyAsync(gateway, accounts, messagesPerAccount: 4, tag: $"r{round}");
            }
        });

        var received = new List<StreamMessage>();
        string? lastSseId;
        await using (StreamClient first = await StreamClient.OpenSseAsync(gateway.Address, token, "PNr1,PNr2", since: "PNr1:0,PNr2:0"))
        {
            await first.WaitForAsync(static m => m.Count(static x => x.Type == "event") >= 60, "60 events before the disconnect");
            await first.DisposeAsync();
            received.AddRange(first.Events);
            lastSseId = received[^1].SseId;
        }

        await Task.Delay(500); // ingestion goes on while the client is away
        await using StreamClient resumed = await StreamClient.OpenSseAsync(gateway.Address, token, "PNr1,PNr2", lastEventId: lastSseId);
        await resumed.WaitForAsync(static m => m.Count(static x => x.Type == "event") >= 40, "40 events after resuming");
        await stop.CancelAsync();
        await ingest;

        await AssertEveryLoggedEventOnceAsync(database, resumed, accounts, after: 0, earlier: received);

        // The client's view, each row at its latest event, is the sync API's.
        foreach (string account in accounts)
        {
            var latest = received.Concat(resumed.Events).Where(e => e.Account == account && e.Kind is "message.created" or "message.status")
                .GroupBy(static e => e.Root.GetProperty("data").GetProperty("wamid").GetString()!)
                .ToDictionary(static g => g.Key, static g => g.Last().Root.GetProperty("data").GetProperty("status").ToString());
            List<System.Text.Json.JsonElement> synced = await SyncClient.GetAllAsync(gateway.Client, account, "messages");
            Assert.Equal(synced.Count, latest.Count);
            Assert.All(synced, item => Assert.Equal(item.GetProperty("status").ToString(), latest[item.GetProperty("wamid").GetString()!]));
        }
    }

    [Fact]
    public async Task ATokenForOneAccount_NeverYieldsAnotherAccountsEvents()
    {
        string database = await postgres.Server.CreateDatabaseAsync("streams_scope");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database);
        string aliceToken = GatewayHost.MintToken("PNalice");

        foreach (string path in (string[])["/v1/stream/sse?accounts=PNbob", "/v1/stream/sse?accounts=PNalice,PNbob"])
        {
            using var client = new HttpClient { BaseAddress = gateway.Address };
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", aliceToken);
            Assert.Equal(HttpStatusCode.Forbidden, (await client.SendAsync(request)).StatusCode);
        }

        var refused = await Assert.ThrowsAsync<WebSocketException>(() => StreamClient.OpenWebSocketAsync(gateway.Address, aliceToken, "PNbob"));
        Assert.Contains("403", refused.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<WebSocketException>(() => StreamClient.OpenWebSocketAsync(gateway.Address, "not-a-token", "PNalice"));

        await using StreamClient alice = await StreamClient.OpenWebSocketAsync(gateway.Address, aliceToken, "PNalice", since: "PNalice:0");
        await LiveEventTests.SendConcurrentlyAsync(gateway, ["PNalice", "PNbob"], messagesPerAccount: 10);
        await AssertEveryLoggedEventOnceAsync(database, alice, ["PNalice"], after: 0);
        Assert.All(alice.Events, static e => Assert.Equal("PNalice", e.Account));
    }

    [Fact]
    public async Task AClientThatStopsReading_IsCutOffWithAResync_WhileOthersAndIngestionContinue()
    {
        string database = await postgres.Server.CreateDatabaseAsync("streams_slow");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database, "--Memo:Streams:QueueCapacity=1000");
        string token = GatewayHost.MintToken("PNslow");
        using var cutOff = new CounterRecorder(gateway.App.Services, "memo.stream.slow_consumer.disconnects", "memo.transport");
        using var sent = new CounterRecorder(gateway.App.Services, "memo.stream.events.sent", "memo.transport");
        await using StreamClient stalled = await StreamClient.OpenWebSocketAsync(gateway.Address, token, "PNslow", since: "PNslow:0", read: false, receiveBufferBytes: 4096);
        await using StreamClient healthy = await StreamClient.OpenSseAsync(gateway.Address, token, "PNslow", since: "PNslow:0");

        // About 12 MB of events: far more than the socket buffers between the server and the stalled client hold.
        string text = new('x', 2000);
        await Parallel.ForEachAsync(Enumerable.Range(0, 120), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (batch, _) =>
        {
            string body = WebhookPayloads.Envelope("PNslow", messages: Enumerable.Range(0, 50)
                .Select(i => WebhookPayloads.TextMessage($"wamid.slow.{batch}.{i}", $"49{i % 7}", 1700000000 + i, text)));
            using HttpResponseMessage response = await gateway.PostWebhookAsync(body);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        });

        await AssertEveryLoggedEventOnceAsync(database, healthy, ["PNslow"], after: 0, seconds: 60);
        stalled.StartReading();
        await stalled.WaitForAsync(static m => m.Any(static x => x.Type == "resync"), "the stalled client reads its resync signal", seconds: 60);
        StreamMessage resync = stalled.Messages.Single(static m => m.Type == "resync");
        Assert.Equal("slow_consumer", resync.Root.GetProperty("reason").GetString());
        long cursor = resync.Root.GetProperty("cursors").GetProperty("PNslow").GetInt64();
        long lastEvent = stalled.Events.Select(static e => e.Seq).DefaultIfEmpty(0).Max();
        Assert.Equal(lastEvent, cursor);
        await Eventually.TrueAsync(() => stalled.Ended, "the server closes the stalled connection");
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, stalled.CloseStatus);
        await Eventually.TrueAsync(() => cutOff["websocket"] == 1, "the cut-off is counted");
        Assert.Equal(0, cutOff["sse"]);
        Assert.True(sent["sse"] >= healthy.Events.Count(), "events sent to the SSE client are counted");
    }

    [Fact]
    public async Task PastTheConnectionLimit_503_AndOnShutdown_WebSocketsAreClosedAsGoingAway()
    {
        string database = await postgres.Server.CreateDatabaseAsync("streams_limits");
        GatewayHost gateway = await GatewayHost.StartAsync(database, "--Memo:Streams:MaxConnections=1");
        string token = GatewayHost.MintToken("PNlimit");
        await using StreamClient first = await StreamClient.OpenWebSocketAsync(gateway.Address, token, "PNlimit");
        await first.WaitForAsync(static m => m.Any(static x => x.Type == "ready"), "the first stream is live");

        using (var client = new HttpClient { BaseAddress = gateway.Address })
        using (var request = new HttpRequestMessage(HttpMethod.Get, "/v1/stream/sse?accounts=PNlimit"))
        {
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
            using HttpResponseMessage refused = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.NotNull(refused.Headers.RetryAfter);
        }

        await gateway.DisposeAsync();
        await Eventually.TrueAsync(() => first.Ended, "the stream ends when the gateway stops");
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, first.CloseStatus);
    }

    [Fact]
    public async Task AnIdleSseStream_GetsAHeartbeatEveryInterval_AndStillItsNextEvent()
    {
        string database = await postgres.Server.CreateDatabaseAsync("streams_heartbeat");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database, "--Memo:Streams:HeartbeatSeconds=1");
        using RawSseStream reader = await RawSseStream.OpenAsync(gateway, "PNidle");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        int pings = 0;
        var idle = System.Diagnostics.Stopwatch.StartNew();
        while (pings < 3 && await reader.ReadLineAsync(timeout.Token) is { } line)
        {
            pings += line == ": ping" ? 1 : 0;
        }

        // Three heartbeats of a 1 s interval, not sooner (they are not sent in a loop) and not much later.
        Assert.InRange(idle.Elapsed.TotalSeconds, 2.5, 10);
        await LiveEventTests.SendConcurrentlyAsync(gateway, ["PNidle"], messagesPerAccount: 1);
        string? data;
        do
        {
            data = await reader.ReadLineAsync(timeout.Token);
        }
        while (data is not null && !data.StartsWith("data: {\"type\":\"event\"", StringComparison.Ordinal));

        Assert.NotNull(data);
    }

    [Fact]
    public async Task AnSseStreamThatCarriesEvents_GetsNoHeartbeat()
    {
        // A heartbeat only proves a quiet connection alive: with 5,000 subscribers, one comment per stream every
        // interval whatever the traffic was a send and a wake-up per stream (docs/PERFORMANCE.md, nineteenth session).
        string database = await postgres.Server.CreateDatabaseAsync("streams_busy_heartbeat");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database, "--Memo:Streams:HeartbeatSeconds=3");
        using RawSseStream reader = await RawSseStream.OpenAsync(gateway, "PNbusy");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        // One webhook every 250 ms for 7.5 s: two heartbeat intervals and more, never 3 s without an event.
        const int Webhooks = 30;
        Task sending = Task.Run(async () =>
        {
            for (int i = 0; i < Webhooks; i++)
            {
                await LiveEventTests.SendConcurrentlyAsync(gateway, ["PNbusy"], messagesPerAccount: 1, tag: $"b{i}");
                await Task.Delay(250);
            }
        });

        int events = 0;
        int pings = 0;
        while (events < Webhooks && await reader.ReadLineAsync(timeout.Token) is { } line)
        {
            pings += line == ": ping" ? 1 : 0;
            events += line.StartsWith("event: message.created", StringComparison.Ordinal) ? 1 : 0;
        }

        await sending;
        Assert.Equal(Webhooks, events);
        Assert.Equal(0, pings);
    }

    [Fact]
    public async Task AnIdleWebSocket_IsPinged_AClientThatAnswersStays_AndOneThatNeverAnswersIsDropped()
    {
        // The sessions ping their WebSockets themselves (no runtime keep-alive timer per connection): pings must come,
        // an answering client must keep its stream, and a silent one must be dropped after two intervals.
        string database = await postgres.Server.CreateDatabaseAsync("streams_ws_ping");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database, "--Memo:Streams:HeartbeatSeconds=1");
        string token = GatewayHost.MintToken("PNping");
        await using StreamClient answering = await StreamClient.OpenWebSocketAsync(gateway.Address, token, "PNping", since: "PNping:0");
        await answering.WaitForAsync(static m => m.Any(static x => x.Type == "ready"), "WebSocket ready");

        using var silent = new TcpClient();
        await silent.ConnectAsync(gateway.Address.Host, gateway.Address.Port);
        NetworkStream stream = silent.GetStream();
        string key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"GET /v1/stream/ws?accounts=PNping&since=PNping:0 HTTP/1.1\r\nHost: {gateway.Address.Authority}\r\nUpgrade: websocket\r\n" +
            $"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"));

        // Read the 101 and then the server's frames (unmasked: opcode byte, length byte, payload), never answering.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var received = new List<byte>();
        var buffer = new byte[4096];
        var connected = System.Diagnostics.Stopwatch.StartNew();
        int read;
        while ((read = await ReadOrEndAsync(stream, buffer, timeout.Token)) > 0)
        {
            received.AddRange(buffer.AsSpan(0, read));
        }

        TimeSpan droppedAfter = connected.Elapsed;
        byte[] bytes = [.. received];
        int headerEnd = bytes.AsSpan().IndexOf("\r\n\r\n"u8);
        Assert.StartsWith("HTTP/1.1 101", Encoding.ASCII.GetString(bytes, 0, headerEnd));
        int pings = 0;
        for (int at = headerEnd + 4; at + 1 < bytes.Length;)
        {
            int opcode = bytes[at] & 0x0F;
            int length = bytes[at + 1] & 0x7F;
            int header = length == 126 ? 4 : length == 127 ? 10 : 2;
            length = length == 126 ? (bytes[at + 2] << 8) | bytes[at + 3] : length;
            pings += opcode == 0x9 ? 1 : 0;
            at += header + length;
        }

        Assert.True(pings >= 1, $"no ping in {bytes.Length - headerEnd - 4} bytes of frames");
        Assert.False(timeout.IsCancellationRequested, "a client that never answers a ping was not dropped within 30 s");
        Assert.True(droppedAfter >= TimeSpan.FromSeconds(2), $"dropped after {droppedAfter.TotalSeconds:F1} s, before two heartbeat intervals");

        // The client that answers (ClientWebSocket sends the pongs) still has its stream, and its next event.
        Assert.False(answering.Ended);
        await LiveEventTests.SendConcurrentlyAsync(gateway, ["PNping"], messagesPerAccount: 1);
        await AssertEveryLoggedEventOnceAsync(database, answering, ["PNping"], after: 0);

        static async Task<int> ReadOrEndAsync(NetworkStream stream, byte[] buffer, CancellationToken cancellationToken)
        {
            try
            {
                return await stream.ReadAsync(buffer, cancellationToken);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException)
            {
                return 0; // reset by the server, or the test's own timeout (asserted above)
            }
        }
    }

    [Fact]
    public async Task AStreamWhoseTokenExpires_IsClosedWithTheTokenExpiredFrame_OnBothTransports()
    {
        string database = await postgres.Server.CreateDatabaseAsync("streams_expiry");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database);
        string shortLived = GatewayHost.MintToken(TimeSpan.FromSeconds(3), "PNexp");
        await using StreamClient sse = await StreamClient.OpenSseAsync(gateway.Address, shortLived, "PNexp", since: "PNexp:0");
        await using StreamClient ws = await StreamClient.OpenWebSocketAsync(gateway.Address, shortLived, "PNexp", since: "PNexp:0");
        await sse.WaitForAsync(static m => m.Any(static x => x.Type == "ready"), "SSE ready");
        await ws.WaitForAsync(static m => m.Any(static x => x.Type == "ready"), "WebSocket ready");

        // Events still flow while the token is valid.
        await LiveEventTests.SendConcurrentlyAsync(gateway, ["PNexp"], messagesPerAccount: 2);
        await AssertEveryLoggedEventOnceAsync(database, sse, ["PNexp"], after: 0);
        await AssertEveryLoggedEventOnceAsync(database, ws, ["PNexp"], after: 0);

        foreach (StreamClient client in (StreamClient[])[sse, ws])
        {
            await client.WaitForAsync(static m => m.Any(static x => x.Type == "token_expired"), "the token_expired frame", seconds: 15);
            await Eventually.TrueAsync(() => client.Ended, "the stream ends after the token_expired frame");
            StreamMessage last = client.Messages.Last();
            Assert.Equal("token_expired", last.Type);
            // It says where the client is, so a client with a fresh token resumes without a gap.
            Assert.Equal(client.Events.Last().Seq, last.Root.GetProperty("cursors").GetProperty("PNexp").GetInt64());
        }

        Assert.Equal(WebSocketCloseStatus.PolicyViolation, ws.CloseStatus);
    }

    [Fact]
    public async Task CursorsOlderThanTheKeptLog_Get410CursorExpired_FromTheSyncApiAndBothStreams_NewerOnesContinue()
    {
        string database = await postgres.Server.CreateDatabaseAsync("streams_retention");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database);
        string token = GatewayHost.MintToken("PNkept");
        await LiveEventTests.SendConcurrentlyAsync(gateway, ["PNkept"], messagesPerAccount: 10);
        // Retention drops the account's first five events, as dropping an old partition of account_events would.
        Assert.Equal(5, await Database.CountAsync(database,
            "WITH d AS (DELETE FROM account_events WHERE account = 'PNkept' AND seq <= 5 RETURNING 1) SELECT count(*) FROM d"));

        // A client at seq 3 would never see events 4 and 5: refused, with where the log begins now.
        using (HttpResponseMessage expired = await gateway.Client.GetAsync("/v1/accounts/PNkept/messages?since_seq=3"))
        {
            Assert.Equal(HttpStatusCode.Gone, expired.StatusCode);
            using var body = System.Text.Json.JsonDocument.Parse(await expired.Content.ReadAsStringAsync());
            Assert.Equal("cursor_expired", body.RootElement.GetProperty("error").GetString());
            Assert.Equal(6, body.RootElement.GetProperty("oldest_seq").GetInt64());
        }

        using (var client = new HttpClient { BaseAddress = gateway.Address })
        using (var request = new HttpRequestMessage(HttpMethod.Get, "/v1/stream/sse?accounts=PNkept&since=PNkept:3"))
        {
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
            using HttpResponseMessage expired = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.Gone, expired.StatusCode);
            using var body = System.Text.Json.JsonDocument.Parse(await expired.Content.ReadAsStringAsync());
            Assert.Equal(6, body.RootElement.GetProperty("oldest_seq").GetProperty("PNkept").GetInt64());
        }

        var refused = await Assert.ThrowsAsync<WebSocketException>(() => StreamClient.OpenWebSocketAsync(gateway.Address, token, "PNkept", since: "PNkept:3"));
        Assert.Contains("410", refused.Message, StringComparison.Ordinal);
        string metrics = await gateway.Client.GetStringAsync("/metrics");
        foreach (string reader in (string[])["sync", "sse", "websocket"])
        {
            string series = Assert.Single(metrics.Split('\n'), line => line.StartsWith("memo_cursors_expired_total{", StringComparison.Ordinal)
                && line.Contains($"memo_reader=\"{reader}\"", StringComparison.Ordinal));
            Assert.EndsWith(" 1", series, StringComparison.Ordinal);
        }

        // A client at seq 5 has everything that was dropped; a first read (0) takes what is kept.
        SyncClient.Page page = await SyncClient.GetPageAsync(gateway.Client, "PNkept", "messages", sinceSeq: 5);
        Assert.NotEmpty(page.Items);
        Assert.All(page.Items, static item => Assert.True(item.GetProperty("seq").GetInt64() > 5));
        Assert.NotEmpty((await SyncClient.GetPageAsync(gateway.Client, "PNkept", "messages", sinceSeq: 0)).Items);
        Assert.Empty((await SyncClient.GetPageAsync(gateway.Client, "PNkept", "messages", sinceSeq: long.MaxValue)).Items);
        await using StreamClient resumed = await StreamClient.OpenWebSocketAsync(gateway.Address, token, "PNkept", since: "PNkept:5");
        await AssertEveryLoggedEventOnceAsync(database, resumed, ["PNkept"], after: 5);
    }

    /// <summary>
    /// The client's events (with <paramref name="earlier"/> ones from a previous connection) are exactly the log's
    /// events of those accounts after <paramref name="after"/>: each seq once, in order.
    /// </summary>
    internal static async Task AssertEveryLoggedEventOnceAsync(string database, StreamClient client, string[] accounts, long after,
        IReadOnlyList<StreamMessage>? earlier = null, int seconds = 30)
    {
        foreach (string account in accounts)
        {
            List<(long Seq, string Kind)> log = await ReadLogAsync(database, account, after);
            await Eventually.TrueAsync(() => client.Events.Count(e => e.Account == account) + (earlier?.Count(e => e.Account == account) ?? 0) >= log.Count,
                $"{account}: {log.Count} events received", seconds);
            List<(long, string)> received = [.. (earlier ?? []).Concat(client.Events).Where(e => e.Account == account).Select(static e => (e.Seq, e.Kind!))];
            Assert.Equal(log, received);
        }
    }

    private static async Task<List<(long, string)>> ReadLogAsync(string database, string account, long after)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "SELECT seq, CASE kind WHEN 1 THEN 'message.created' WHEN 2 THEN 'message.status' WHEN 3 THEN 'contact.updated' ELSE 'conversation.updated' END " +
            "FROM account_events WHERE account = $1 AND seq > $2 ORDER BY seq", connection);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = account });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = after });
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
        var log = new List<(long, string)>();
        while (await reader.ReadAsync())
        {
            log.Add((reader.GetInt64(0), reader.GetString(1)));
        }

        return log;
    }

    /// <summary>An SSE stream of one account from seq 0, read line by line as sent, comments (heartbeats) included.</summary>
    private sealed class RawSseStream(HttpClient http, HttpResponseMessage response, StreamReader reader) : IDisposable
    {
        public static async Task<RawSseStream> OpenAsync(GatewayHost gateway, string account)
        {
            var http = new HttpClient { BaseAddress = gateway.Address, Timeout = Timeout.InfiniteTimeSpan };
            using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/stream/sse?accounts={account}&since={account}:0");
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", GatewayHost.MintToken(account));
            HttpResponseMessage response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            return new RawSseStream(http, response, new StreamReader(await response.Content.ReadAsStreamAsync()));
        }

        public ValueTask<string?> ReadLineAsync(CancellationToken cancellationToken) => reader.ReadLineAsync(cancellationToken);

        public void Dispose()
        {
            reader.Dispose();
            response.Dispose();
            http.Dispose();
        }
    }
}
