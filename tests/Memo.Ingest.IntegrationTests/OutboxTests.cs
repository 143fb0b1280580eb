using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Memo.Ingest.TestSupport;
using Microsoft.Extensions.Logging;
using Npgsql;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// Replies through the outbox against the real host, PostgreSQL and a fake Graph API (<see cref="FakeGraphApi"/>): one
/// row and one send per idempotency key, the reply in the stream and the sync API at once, Meta's answers and limits,
/// and two instances sharing one outbox.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class OutboxTests(PostgresFixture postgres) : IAsyncLifetime
{
    private FakeGraphApi _graph = null!;

    public async Task InitializeAsync() => _graph = await FakeGraphApi.StartAsync();

    public async Task DisposeAsync() => await _graph.DisposeAsync();

    private string[] OutboxArguments(params string[] more) => _graph.GatewayArguments(more);

    private static string? Text(JsonElement item, string property) =>
        item.GetProperty(property).ValueKind == JsonValueKind.Null ? null : item.GetProperty(property).ToString();

    private static bool IsAbout(StreamMessage message, string key) =>
        message.Type == "event" && message.Kind!.StartsWith("message.", StringComparison.Ordinal)
        && message.Root.GetProperty("data").GetProperty("wamid").GetString() == key;

    private static async Task<JsonElement?> ReplyAsync(GatewayHost gateway, string account, long id) =>
        (await SyncClient.GetAllAsync(gateway.Client, account, "messages")).Cast<JsonElement?>()
            .FirstOrDefault(m => m!.Value.GetProperty("wamid").GetString() == $"memo.outbox.{id}");

    private static Task WaitForStatusAsync(GatewayHost gateway, string account, long id, string status, int seconds = 30) =>
        Eventually.TrueAsync(async () => await ReplyAsync(gateway, account, id) is { } reply && Text(reply, "status") == status,
            $"reply {id} reaches '{status}'", seconds);

    [Fact]
    public async Task AReplyPostedTwiceWithOneKey_IsOneRowAndOneSend_InTheStreamAtOnce_AndMetasStatusesMoveIt()
    {
        const string account = "PNreply";
        await using GatewayHost gateway = await GatewayHost.StartAsync(await postgres.Server.CreateDatabaseAsync("outbox_once"), OutboxArguments());
        await using StreamClient stream = await StreamClient.OpenSseAsync(gateway.Address, GatewayHost.MintToken(account), account, since: account + ":0");
        await using StreamClient socket = await StreamClient.OpenWebSocketAsync(gateway.Address, GatewayHost.MintToken(account), account, since: account + ":0");
        string body = ReplyClient.Text("+55 11 98765-4321", "your order has shipped");

        // A read token cannot send; the send token can, once per key.
        using (HttpResponseMessage refused = await ReplyClient.PostAsync(gateway.Client, account, body, "key-1", GatewayHost.MintToken(account)))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }

        long id = await ReplyClient.QueueAsync(gateway.Client, account, body, "key-1");
        using (HttpResponseMessage again = await ReplyClient.PostAsync(gateway.Client, account, body, "key-1"))
        {
            Assert.Equal(HttpStatusCode.Accepted, again.StatusCode);
            Assert.True(again.Headers.Contains("Idempotent-Replayed"));
            Assert.Equal(id, JsonDocument.Parse(await again.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetInt64());
        }

        using (HttpResponseMessage reused = await ReplyClient.PostAsync(gateway.Client, account, ReplyClient.Text("15550001", "other"), "key-1"))
        {
            Assert.Equal(HttpStatusCode.UnprocessableEntity, reused.StatusCode);
        }

        string key = $"memo.outbox.{id}";
        await stream.WaitForAsync(m => m.Any(e => IsAbout(e, key) && Text(e.Root.GetProperty("data"), "status") == "accepted"),
            "the reply's accepted state on the stream");
        await socket.WaitForAsync(m => m.Any(e => IsAbout(e, key) && Text(e.Root.GetProperty("data"), "status") == "accepted"),
            "the reply's accepted state on the WebSocket");
        FakeSend send = Assert.Single(_graph.Sends);
        Assert.Equal(account, send.PhoneNumberId);
        Assert.Equal("Bearer test-system-user-token", send.Authorization);
        Assert.Equal(key, send.CallbackData);
        Assert.Contains("\"messaging_product\":\"whatsapp\"", send.Body, StringComparison.Ordinal);

        // The stream showed the reply from its first state on, in seq order: created (queued), sending, accepted: three
        // events in the log. (Each event carries the row as its round left it, so two states committed in one round
        // both show the later one.)
        StreamMessage[] events = [.. stream.Events.Where(e => IsAbout(e, key))];
        string?[] states = [.. events.Select(e => Text(e.Root.GetProperty("data"), "status"))];
        Assert.Equal(3, events.Length);
        Assert.Equal(3, await Database.CountAsync(gateway.ConnectionString, "SELECT count(*) FROM account_events WHERE key = $1", key));
        Assert.Equal("message.created", events[0].Kind);
        Assert.Equal("accepted", states[^1]);
        string[] ladder = ["queued", "sending", "accepted"];
        Assert.True(states.Zip(states.Skip(1)).All(p => Array.IndexOf(ladder, p.First) <= Array.IndexOf(ladder, p.Second)), string.Join(",", states));
        Assert.True(events.Zip(events.Skip(1)).All(p => p.First.Seq < p.Second.Seq));

        JsonElement reply = (await ReplyAsync(gateway, account, id))!.Value;
        Assert.Equal("outbound", Text(reply, "direction"));
        Assert.Equal("outbox", Text(reply, "origin"));
        Assert.Equal("551187654321", Text(reply, "contact"));
        Assert.Equal("your order has shipped", Text(reply, "text"));
        Assert.Equal(send.Wamid, Text(reply, "sent_wamid"));

        // Meta's statuses name the wamid and carry the key back: they move this row, and make no placeholder row.
        using (HttpResponseMessage delivered = await gateway.PostWebhookAsync(ReplyClient.Status(account, id, send.Wamid!, "delivered", 1700000100, "551187654321")))
        {
            Assert.Equal(HttpStatusCode.OK, delivered.StatusCode);
        }

        await WaitForStatusAsync(gateway, account, id, "delivered");
        Assert.Equal(0, await Database.CountAsync(gateway.ConnectionString, "SELECT count(*) FROM messages WHERE wamid = $1", send.Wamid!));
        Assert.Equal(1, await Database.CountAsync(gateway.ConnectionString, "SELECT count(*) FROM outbox"));
        await Task.Delay(500);
        Assert.Single(_graph.Sends);
        JsonElement conversation = Assert.Single(await SyncClient.GetAllAsync(gateway.Client, account, "conversations"));
        Assert.Equal(key, Text(conversation.GetProperty("last_message"), "wamid"));
        Assert.Equal(0, conversation.GetProperty("unread_count").GetInt64());
    }

    [Fact]
    public async Task AReplyIsSentOnlyOnceItsClaimIsCommitted_SoMetasAnswerIsAlwaysRecorded()
    {
        // PostgreSQL sends a large row to the client as soon as it is produced, before the statement's implicit
        // transaction commits. A sender that started a send on reading its claimed row could record Meta's answer
        // before the claim committed: the outcome's UPDATE still saw the row 'queued', changed nothing, and the reply
        // stayed 'sending' until another instance took the lease and declared it 'unknown' (a CI run saw 10 of 300).
        // A deferred trigger makes the claim's commit take 0.3 s per reply here, so that the window is wide open.
        const string account = "PNclaim";
        string connectionString = await postgres.Server.CreateDatabaseAsync("outbox_claim");
        await using GatewayHost gateway = await GatewayHost.StartAsync(connectionString, OutboxArguments());
        await using (var connection = new NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("""
                CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.3); RETURN NULL; END $$;
                CREATE CONSTRAINT TRIGGER claim_commits_slowly AFTER UPDATE ON outbox DEFERRABLE INITIALLY DEFERRED
                    FOR EACH ROW WHEN (OLD.state = 'queued' AND NEW.state = 'sending') EXECUTE FUNCTION slow_commit();
                """, connection);
            await command.ExecuteNonQueryAsync();
        }

        // PostgreSQL 15 sends its 8 KB output buffer each time it fills: claims of several replies of about 6 KB each
        // (the claim returns the request) reach the client row by row while the commit is still to come. The first
        // reply's slow claim lets the others queue up and be claimed together.
        const int replies = 6;
        await Parallel.ForAsync(0, replies, async (i, _) =>
            await ReplyClient.QueueAsync(gateway.Client, account, ReplyClient.Text($"1555010{i}", new string('€', 1000)), $"large-{i}"));
        await Eventually.TrueAsync(async () => await Database.CountAsync(connectionString, "SELECT count(*) FROM outbox WHERE state = 'accepted'") == replies,
            "every reply is accepted", seconds: 30);
        Assert.Equal(replies, _graph.Sends.Count);
    }

    [Fact]
    public async Task BadReplies_AreRefusedWithA4xx_AndChangeNothing()
    {
        const string account = "PNbadreply";
        await using GatewayHost gateway = await GatewayHost.StartAsync(await postgres.Server.CreateDatabaseAsync("outbox_bad"), OutboxArguments());
        string[] bodies =
        [
            "not json", "[]", """{"type":"text","text":{"body":"no recipient"}}""", """{"to":"1555","type":"text"}""",
            """{"to":"1555","type":"text","text":{"body":""}}""", """{"to":"1555","type":"image","image":{}}""",
            """{"to":"1555","type":"fax","fax":{}}""", """{"to":"1555","type":"text","text":{"body":"x"},"biz_opaque_callback_data":"mine"}""",
            """{"to":"1555","type":"text","text":{"body":"x"},"messaging_product":"sms"}""",
        ];
        foreach (string body in bodies)
        {
            using HttpResponseMessage response = await ReplyClient.PostAsync(gateway.Client, account, body);
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{body}: {(int)response.StatusCode}");
        }

        using (HttpResponseMessage badKey = await ReplyClient.PostAsync(gateway.Client, account, ReplyClient.Text("1555", "x"), "has space"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, badKey.StatusCode);
        }

        using (HttpResponseMessage huge = await ReplyClient.PostAsync(gateway.Client, account, ReplyClient.Text("1555", new string('x', 70_000))))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, huge.StatusCode);
        }

        using (HttpResponseMessage otherAccount = await ReplyClient.PostAsync(gateway.Client, account, ReplyClient.Text("1555", "x"), token: GatewayHost.MintSendToken("PNother")))
        {
            Assert.Equal(HttpStatusCode.Forbidden, otherAccount.StatusCode);
        }

        Assert.Equal(0, await Database.CountAsync(gateway.ConnectionString, "SELECT count(*) FROM outbox"));
        Assert.Equal(0, await Database.CountAsync(gateway.ConnectionString, "SELECT count(*) FROM inbox"));
        Assert.Equal(0, await Database.TotalRowsAsync(gateway.ConnectionString));
        Assert.Empty(_graph.Sends);
    }

    [Fact]
    public async Task MetasErrors_AreRetriedOrFailed_AsTheyDeserve()
    {
        const string account = "PNerrors";
        await using GatewayHost gateway = await GatewayHost.StartAsync(await postgres.Server.CreateDatabaseAsync("outbox_errors"), OutboxArguments(
            "--Memo:Outbox:RetryBaseDelaySeconds=0.05", "--Memo:Outbox:MaxRetryDelaySeconds=0.2", "--Memo:Outbox:RequestTimeoutSeconds=1"));
        (string To, FakeAnswer[] Script, string Status, int Sends, int? Code)[] cases =
        [
            ("15550000001", [FakeAnswer.Throughput], "accepted", 2, null),
            ("15550000002", [FakeAnswer.PairRate], "accepted", 2, null),
            ("15550000003", [FakeAnswer.OutsideWindow], "failed", 1, 131047),
            ("15550000004", [FakeAnswer.ServerError, FakeAnswer.ServerError], "accepted", 3, null),
            ("15550000005", [FakeAnswer.Hang], "accepted", 2, null),
            ("15550000006", [FakeAnswer.ExpiredToken], "failed", 1, 190),
        ];
        var ids = new Dictionary<string, long>();
        foreach ((string to, FakeAnswer[] script, _, _, _) in cases)
        {
            _graph.Script(to, script);
            ids[to] = await ReplyClient.QueueAsync(gateway.Client, account, ReplyClient.Text(to, "hello " + to));
        }

        foreach ((string to, _, string status, int sends, int? code) in cases)
        {
            await WaitForStatusAsync(gateway, account, ids[to], status);
            Assert.Equal(sends, _graph.Sends.Count(s => s.To == to));
            Assert.Equal(sends, await Database.CountAsync(gateway.ConnectionString, "SELECT attempts FROM outbox WHERE id = $1", ids[to]));
            if (code is not null)
            {
                JsonElement reply = (await ReplyAsync(gateway, account, ids[to]))!.Value;
                Assert.Equal(code, reply.GetProperty("status_errors")[0].GetProperty("code").GetInt32());
                Assert.Equal(code, (int)await Database.CountAsync(gateway.ConnectionString, "SELECT error_code FROM outbox WHERE id = $1", ids[to]));
            }
        }

        // None of them is sent again later.
        await Task.Delay(500);
        Assert.Equal(cases.Sum(static c => c.Sends), _graph.Sends.Count);

        // Operators see each result by Meta's code, the waits Meta imposed, and an empty outbox.
        string metrics = await gateway.Client.GetStringAsync("/metrics");
        Assert.Contains("memo_outbox_sends_total{code=\"131047\",result=\"failed\"} 1\n", metrics, StringComparison.Ordinal);
        Assert.Contains("memo_outbox_sends_total{code=\"130429\",result=\"throttled_account\"} 1\n", metrics, StringComparison.Ordinal);
        Assert.Contains("memo_outbox_sends_total{code=\"\",result=\"accepted\"} 4\n", metrics, StringComparison.Ordinal);
        Assert.Contains("memo_outbox_throttled_total{limit=\"meta_pair\"} 1\n", metrics, StringComparison.Ordinal);
        await Eventually.TrueAsync(async () => (await gateway.Client.GetStringAsync("/metrics")).Contains("memo_outbox_depth{state=\"queued\"} 0\n", StringComparison.Ordinal),
            "the depth gauge shows an empty outbox");
    }

    [Fact]
    public async Task RetriesStopAtTheHorizon_AndTheRowFailsWithTheLastError()
    {
        const string account = "PNhorizon";
        await using GatewayHost gateway = await GatewayHost.StartAsync(await postgres.Server.CreateDatabaseAsync("outbox_horizon"), OutboxArguments(
            "--Memo:Outbox:RetryBaseDelaySeconds=0.1", "--Memo:Outbox:MaxRetryDelaySeconds=0.2", "--Memo:Outbox:RetryHorizonSeconds=1"));
        _graph.Script("15550000009", [.. Enumerable.Repeat(FakeAnswer.ServerError, 100)]);
        long id = await ReplyClient.QueueAsync(gateway.Client, account, ReplyClient.Text("15550000009", "never"));
        await WaitForStatusAsync(gateway, account, id, "failed");
        int sends = _graph.Sends.Count;
        Assert.InRange(sends, 3, 20);
        Assert.Equal(131000, (int)await Database.CountAsync(gateway.ConnectionString, "SELECT error_code FROM outbox WHERE id = $1", id));
        await Task.Delay(500);
        Assert.Equal(sends, _graph.Sends.Count);
    }

    /// <summary>
    /// Measured at the fake: the number's throughput and the pair rate are never exceeded. With GCRA, a window of w
    /// seconds holds at most burst + w / interval sends counted where they start; between the sender's start and the
    /// fake's arrival, requests jitter when the tests run in parallel (a new pooled connection, thread pool delays): by
    /// up to ~30 ms usually, and once by 63 ms in a CI run on a slow day (three arrivals within 37 ms of sends 50 ms
    /// apart). So arrivals get 100 ms of slack. It still catches a pacer that is off: unpaced, or at 1.2× the rate, the
    /// 50 sends of the account break the bound over the whole run (50 within 2 s, where 1 + 2.1 / 0.05 = 43 are allowed).
    /// </summary>
    [Fact]
    public async Task ThePerNumberRateAndThePairRate_AreNeverExceeded_AtTheFake()
    {
        const string account = "PNrate";
        await using GatewayHost gateway = await GatewayHost.StartAsync(await postgres.Server.CreateDatabaseAsync("outbox_rate"), OutboxArguments(
            "--Memo:Outbox:MessagesPerSecond=20", "--Memo:Outbox:PairIntervalSeconds=0.5", "--Memo:Outbox:PairBurst=2"));
        var queued = new List<Task<long>>();
        for (int i = 0; i < 50; i++)
        {
            queued.Add(ReplyClient.QueueAsync(gateway.Client, account, ReplyClient.Text($"1555100{i:D4}", "many recipients")));
        }

        for (int i = 0; i < 8; i++)
        {
            queued.Add(ReplyClient.QueueAsync(gateway.Client, account, ReplyClient.Text("15559999999", "one recipient " + i)));
        }

        await Task.WhenAll(queued);
        await Eventually.TrueAsync(() => _graph.Sends.Count == 58, "every reply is sent", seconds: 60);

        AssertPaced([.. _graph.Sends.Select(static s => s.ReceivedTicks)], burst: 1, intervalSeconds: 1 / 20.0, "the account");
        AssertPaced([.. _graph.Sends.Where(static s => s.To == "15559999999").Select(static s => s.ReceivedTicks)], burst: 2, intervalSeconds: 0.5, "the pair");
        Assert.Equal(58, await Database.CountAsync(gateway.ConnectionString, "SELECT count(*) FROM outbox WHERE state = 'accepted' AND attempts = 1"));
    }

    private static void AssertPaced(long[] ticks, int burst, double intervalSeconds, string what)
    {
        Array.Sort(ticks);
        const double jitter = 0.1;
        for (int i = 0; i < ticks.Length; i++)
        {
            for (int j = i + 1; j < ticks.Length; j++)
            {
                double window = (double)(ticks[j] - ticks[i]) / Stopwatch.Frequency;
                int allowed = burst + (int)Math.Floor((window + jitter) / intervalSeconds);
                Assert.True(j - i + 1 <= allowed, $"{what}: {j - i + 1} sends within {window * 1000:F0} ms (at most {allowed} allowed)");
            }
        }
    }

    [Fact]
    public async Task TwoInstancesDrainingOneOutbox_SendEachReplyOnce()
    {
        string connectionString = await postgres.Server.CreateDatabaseAsync("outbox_two");
        string[] arguments = OutboxArguments("--Memo:Outbox:MessagesPerSecond=500");
        using var logs = new LogCapture();
        await using GatewayHost first = await GatewayHost.StartAsync(connectionString, logs, arguments);
        await using GatewayHost second = await GatewayHost.StartAsync(connectionString, logs, arguments);
        const int replies = 300;
        await Parallel.ForAsync(0, replies, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, _) =>
        {
            GatewayHost gateway = i % 2 == 0 ? first : second;
            await ReplyClient.QueueAsync(gateway.Client, $"PNtwo{i % 10}", ReplyClient.Text($"1555200{i:D4}", "hello"), $"k{i}");
        });

        // A bound, not a timing claim: about 5 s here alone, but a CI run on a VM with half its CPU stolen and the page
        // cache emptied by its host went past 60 s (the assertions below are what the test is about).
        try
        {
            await Eventually.TrueAsync(async () => await Database.CountAsync(connectionString, "SELECT count(*) FROM outbox WHERE state = 'accepted'") == replies,
                "every reply is accepted", seconds: 180);
        }
        catch (TimeoutException timeout)
        {
            // Where the others are, for the next run to say why.
            string states = await Database.TextAsync(connectionString, """
                SELECT string_agg(state || ' ' || n || ' (attempts ' || attempts || ', errors ' || COALESCE(codes, '-') || ')', '; ')
                FROM (SELECT state, count(*) AS n, string_agg(DISTINCT attempts::text, ',') AS attempts,
                             string_agg(DISTINCT error_code::text, ',') AS codes
                      FROM outbox GROUP BY state) s
                """);
            string warnings = string.Join(" | ", logs.Entries.Where(static e => e.Level >= LogLevel.Warning && e.Category.Contains("Outbox", StringComparison.Ordinal))
                .Take(10).Select(static e => $"{e.Category}: {e.Message}"));
            throw new TimeoutException($"{timeout.Message}: {states}; the fake Graph API took {_graph.Sends.Count} sends; outbox warnings: {warnings}", timeout);
        }

        await Task.Delay(500);
        Assert.Equal(replies, _graph.Sends.Count);
        Assert.Equal(replies, _graph.Sends.Select(static s => s.CallbackData).Distinct().Count());
        await first.SequencedAsync();
        Assert.Equal(replies, await Database.CountAsync(connectionString, "SELECT count(*) FROM messages WHERE origin = 'outbox' AND status = 'accepted'"));
    }
}
