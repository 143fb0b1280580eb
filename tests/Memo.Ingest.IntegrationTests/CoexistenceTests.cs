using System.Net;
using System.Text.Json;
using Memo.Ingest.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Xunit;
using P = Memo.Ingest.TestSupport.CoexistencePayloads;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// Coexistence numbers (../shared/COEXISTENCE-FACTS.md): echoes, history backfill and the phone's contact book,
/// stored as docs/API.md documents them and read back through the sync API and a live stream, against the real host,
/// PostgreSQL and the sequencer.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class CoexistenceTests(PostgresFixture postgres) : IAsyncLifetime
{
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync() => _gateway = await GatewayHost.StartAsync(await postgres.Server.CreateDatabaseAsync("coexistence"));

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    private async Task PostAllAsync(params string[] bodies)
    {
        foreach (string body in bodies)
        {
            using HttpResponseMessage response = await _gateway.PostWebhookAsync(body);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        await _gateway.SequencedAsync();
    }

    private async Task<Dictionary<string, JsonElement>> MessagesAsync(string account) =>
        (await SyncClient.GetAllAsync(_gateway.Client, account, "messages")).ToDictionary(static m => m.GetProperty("wamid").GetString()!);

    private static string? Text(JsonElement item, string property) =>
        item.GetProperty(property).ValueKind == JsonValueKind.Null ? null : item.GetProperty(property).ToString();

    /// <summary>
    /// Live records that only the sequencer's general statement handles (an echo, a contact book entry) between plain
    /// live messages of the same account, all waiting in the inbox together (one POST): the plain statement must stop
    /// before the first of them (SequencerSql.DrainPlain), or the later plain message would be numbered before them.
    /// </summary>
    [Fact]
    public async Task PlainAndCoexistenceRecords_WaitingTogether_AreNumberedInArrivalOrder()
    {
        const string account = "PNmixed";
        static string Messages(string wamid, long ts) => $"\"messages\":[{WebhookPayloads.TextMessage(wamid, "4915550077", ts, "live")}]";
        await PostAllAsync(P.Changes(
            P.ChangeObject(account, "messages", Messages("wamid.mixed.1", 1700000100)),
            P.ChangeObject(account, "smb_message_echoes", $"\"message_echoes\":[{P.EchoText("wamid.mixed.2", "4915550077", 1700000200, "echo")}]"),
            P.ChangeObject(account, "messages", Messages("wamid.mixed.3", 1700000300)),
            P.ChangeObject(account, "smb_app_state_sync", $"\"state_sync\":[{P.ContactAdd("4915550077", "Ada Lovelace", "Ada", 1700000350)}]"),
            P.ChangeObject(account, "messages", Messages("wamid.mixed.4", 1700000400))));

        string order = await Database.TextAsync(_gateway.ConnectionString,
            $"SELECT string_agg(key, ',' ORDER BY seq) FROM account_events WHERE account = '{account}' AND kind IN (1, 5)");
        Assert.Equal("wamid.mixed.1,wamid.mixed.2,wamid.mixed.3,4915550077,wamid.mixed.4", order);
        Assert.Equal(0, await Database.CountAsync(_gateway.ConnectionString, "SELECT count(*) FROM inbox"));
    }

    [Fact]
    public async Task EchoesAndLiveMessages_OfDifferentlyFormattedNumbers_AreOneConversation_AndOnlyLiveCountsAsUnread()
    {
        const string account = "PNecho";
        // A status of the echo arrives before the echo itself; the echo must not downgrade it.
        await PostAllAsync(
            WebhookPayloads.Envelope(account, statuses: [WebhookPayloads.Status("wamid.echo.1", "read", 1700000110, "551187654321")]),
            P.Echoes(account, P.EchoText("wamid.echo.1", "+55 11 98765-4321", 1700000100, "hello from the phone", numericTimestamp: true)),
            WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage("wamid.live.1", "551187654321", 1700000200, "answer")]),
            P.Echoes(account,
                P.EchoEdit("wamid.echo.2", "5511987654321", 1700000300, "wamid.echo.1", "hello, edited"),
                P.EchoRevoke("wamid.echo.3", "5511987654321", 1700000400, "wamid.live.0")));

        Dictionary<string, JsonElement> messages = await MessagesAsync(account);
        JsonElement echo = messages["wamid.echo.1"];
        Assert.Equal("outbound", Text(echo, "direction"));
        Assert.Equal("echo", Text(echo, "origin"));
        Assert.False(echo.GetProperty("history").GetBoolean());
        Assert.Equal("551187654321", Text(echo, "contact"));
        Assert.Equal("hello from the phone", Text(echo, "text"));
        Assert.Equal("read", Text(echo, "status"));
        Assert.Equal("inbound", Text(messages["wamid.live.1"], "direction"));
        Assert.Equal("live", Text(messages["wamid.live.1"], "origin"));
        Assert.Equal("wamid.echo.1", Text(messages["wamid.echo.2"], "context_id"));
        Assert.Equal("hello, edited", Text(messages["wamid.echo.2"], "text"));
        Assert.Equal("revoke", Text(messages["wamid.echo.3"], "type"));
        // The originals show what happened to them: the echo its newest text, the revoked one (not received yet: a
        // row known only by its revoke) that it was revoked.
        Assert.Equal("hello, edited", Text(echo, "edited_text"));
        Assert.False(echo.GetProperty("revoked").GetBoolean());
        Assert.True(messages["wamid.live.0"].GetProperty("revoked").GetBoolean());
        Assert.Null(Text(messages["wamid.live.0"], "payload"));

        JsonElement conversation = Assert.Single(await SyncClient.GetAllAsync(_gateway.Client, account, "conversations"));
        Assert.Equal("551187654321", Text(conversation, "wa_id"));
        Assert.Equal("", await Database.SequencedTwiceAsync(_gateway.ConnectionString));
        Assert.Equal(4, conversation.GetProperty("message_count").GetInt64());
        Assert.Equal(1, conversation.GetProperty("unread_count").GetInt64());
        Assert.Equal("wamid.echo.3", Text(conversation.GetProperty("last_message"), "wamid"));
    }

    [Fact]
    public async Task Edits_BeforeTheirOriginalOrOutOfOrder_LeaveTheOriginalWithItsNewestText()
    {
        const string account = "PNedits";
        await PostAllAsync(
            // The newest edit first, then the original, then an older edit: the original keeps the newest text.
            WebhookPayloads.Envelope(account, messages: [Edit("wamid.ed.2", 1700000300, "wamid.orig", "third version")]),
            WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage("wamid.orig", "4915550001", 1700000100, "first version")]),
            WebhookPayloads.Envelope(account, messages: [Edit("wamid.ed.1", 1700000200, "wamid.orig", "second version")]));

        Dictionary<string, JsonElement> messages = await MessagesAsync(account);
        JsonElement original = messages["wamid.orig"];
        Assert.Equal("first version", Text(original, "text"));
        Assert.Equal("third version", Text(original, "edited_text"));
        Assert.Equal("inbound", Text(original, "direction"));
        Assert.Equal("4915550001", Text(original, "from"));
        Assert.Equal(3, messages.Count);
        Assert.Equal("", await Database.SequencedTwiceAsync(_gateway.ConnectionString));

        static string Edit(string wamid, long ts, string original, string text) =>
            $$$"""{"from":"4915550001","id":"{{{wamid}}}","timestamp":"{{{ts}}}","type":"edit","edit":{"original_message_id":"{{{original}}}","message":{"type":"text","text":{"body":"{{{text}}}"}""" + "}}}";
    }

    [Fact]
    public async Task HistoryChunks_OutOfOrderAndRepeated_OneRowPerWamid_NeverReorderTheInbox_AndProgressIsAMaximum()
    {
        const string account = "PNhistory";
        string chunk2 = P.HistoryChunk(account, 1, 2, 70,
            [P.Thread("4915550001", P.HistoryText("wamid.h.3", "4915550001", 1690000300, "third", "READ"))], asStrings: true);
        string chunk1 = P.HistoryChunk(account, 1, 1, 40,
        [
            P.Thread("4915550001",
                P.HistoryText("wamid.h.1", "4915550001", 1690000100, "first", "READ"),
                P.HistoryText("wamid.h.2", P.Business, 1690000200, "second", "DELIVERED", to: "4915550001"),
                P.HistoryPlaceholder("wamid.h.photo", "4915550001", 1690000250, "READ")),
        ]);
        await PostAllAsync(WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage("wamid.live.new", "4915550001", 1700000000, "today")]));
        await PostAllAsync(chunk2, chunk1, chunk2, chunk1);

        Dictionary<string, JsonElement> messages = await MessagesAsync(account);
        Assert.Equal(5, messages.Count);
        Assert.Equal(5, await Database.CountAsync(_gateway.ConnectionString, "SELECT count(*) FROM messages"));
        Assert.Equal("", await Database.SequencedTwiceAsync(_gateway.ConnectionString));
        Assert.True(messages["wamid.h.1"].GetProperty("history").GetBoolean());
        Assert.Equal("inbound", Text(messages["wamid.h.1"], "direction"));
        Assert.Equal("read", Text(messages["wamid.h.1"], "status"));
        Assert.Equal("outbound", Text(messages["wamid.h.2"], "direction"));
        Assert.Equal("delivered", Text(messages["wamid.h.2"], "status"));
        Assert.Equal("4915550001", Text(messages["wamid.h.2"], "contact"));

        // History is older than the live message: the conversation still shows the live one, and nothing is unread
        // but the live message.
        JsonElement conversation = Assert.Single(await SyncClient.GetAllAsync(_gateway.Client, account, "conversations"));
        Assert.Equal("wamid.live.new", Text(conversation.GetProperty("last_message"), "wamid"));
        Assert.Equal(1, conversation.GetProperty("unread_count").GetInt64());
        Assert.Equal(5, conversation.GetProperty("message_count").GetInt64());

        JsonElement history = await HistoryAsync(account);
        Assert.Equal("receiving", Text(history, "state"));
        Assert.Equal(70, history.GetProperty("progress").GetInt64());
        Assert.Equal(2, await Database.CountAsync(_gateway.ConnectionString, "SELECT count(*) FROM history_chunks"));

        // The placeholder's media follow-up completes the same row in place (sender and time kept).
        await PostAllAsync(P.MediaFollowUp(account, "wamid.h.photo", "4915550001", 1699999999, "the photo"));
        JsonElement photo = (await MessagesAsync(account))["wamid.h.photo"];
        Assert.Equal("image", Text(photo, "type"));
        Assert.Equal("the photo", Text(photo, "text"));
        Assert.Equal(1690000250, photo.GetProperty("timestamp").GetInt64());
        Assert.Equal(5, await Database.CountAsync(_gateway.ConnectionString, "SELECT count(*) FROM messages"));

        // A follow-up that arrives before its placeholder: one row, with the follow-up's media and, once the
        // placeholder arrives, the placeholder's time and status (the follow-up's own time differs, as in Meta's example).
        await PostAllAsync(P.MediaFollowUp(account, "wamid.h.early", "4915550001", 1699999000, "early photo"));
        await PostAllAsync(P.HistoryChunk(account, 2, 1, 100,
            [P.Thread("4915550001", P.HistoryPlaceholder("wamid.h.early", "4915550001", 1690000390, "READ"))]));
        JsonElement early = (await MessagesAsync(account))["wamid.h.early"];
        Assert.Equal("early photo", Text(early, "text"));
        Assert.Equal("image", Text(early, "type"));
        Assert.Equal(1690000390, early.GetProperty("timestamp").GetInt64());
        Assert.Equal("read", Text(early, "status"));
        Assert.Equal(6, await Database.CountAsync(_gateway.ConnectionString, "SELECT count(*) FROM messages"));
        Assert.Equal("", await Database.SequencedTwiceAsync(_gateway.ConnectionString));

        history = await HistoryAsync(account);
        Assert.Equal("completed", Text(history, "state"));
        Assert.Equal(100, history.GetProperty("progress").GetInt64());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task DeclinedHistory_IsRecordedWithItsDetails(bool withoutEnvelope)
    {
        string account = withoutEnvelope ? "PNdeclinedbare" : "PNdeclined";
        await PostAllAsync(withoutEnvelope ? P.HistoryDeclinedBare(account) : P.HistoryDeclined(account));

        JsonElement history = await HistoryAsync(account);
        Assert.Equal("declined", Text(history, "state"));
        Assert.Equal(2593109, history.GetProperty("errors")[0].GetProperty("code").GetInt32());
        Assert.Contains("declined", history.GetProperty("errors")[0].GetProperty("error_data").GetProperty("details").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ContactBook_AppliedInTimestampOrder_AndARemovalKeepsTheLastName()
    {
        const string account = "PNbook";
        await PostAllAsync(
            P.ContactBook(account, P.ContactAdd("+52 1 55 1234 5678", "Ana López", "Ana", 200, numericTimestamp: true)),
            P.ContactBook(account, P.ContactAdd("5215512345678", "Ana María López", "Ana María", 300)),
            // Older than what is stored: it changes nothing.
            P.ContactBook(account, P.ContactAdd("525512345678", "Stale Name", "Stale", 250)));

        JsonElement entry = Assert.Single(await SyncClient.GetAllAsync(_gateway.Client, account, "contact_book"));
        Assert.Equal("525512345678", Text(entry, "contact"));
        Assert.Equal("Ana María López", Text(entry, "full_name"));
        Assert.False(entry.GetProperty("removed").GetBoolean());

        await PostAllAsync(P.ContactBook(account, P.ContactRemove("525512345678", 400)));
        entry = Assert.Single(await SyncClient.GetAllAsync(_gateway.Client, account, "contact_book"));
        Assert.True(entry.GetProperty("removed").GetBoolean());
        Assert.Equal("Ana María López", Text(entry, "full_name"));
        Assert.Equal(400, entry.GetProperty("timestamp").GetInt64());
    }

    [Fact]
    public async Task LiveStream_SaysWhichEventsAreHistory()
    {
        const string account = "PNstream";
        await using StreamClient stream = await StreamClient.OpenSseAsync(_gateway.Address, GatewayHost.MintToken(account), account);
        await PostAllAsync(
            P.HistoryChunk(account, 0, 1, 100, [P.Thread("4915550001", P.HistoryText("wamid.s.h", "4915550001", 1690000000, "old", "READ"))]),
            WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage("wamid.s.live", "4915550001", 1700000000, "new")]),
            P.ContactBook(account, P.ContactAdd("4915550001", "Jörg", "Jörg", 100)));

        await stream.WaitForAsync(m => m.Any(static e => e.Kind == "contact_book.updated"), "the contact book event");
        StreamMessage[] created = [.. stream.Events.Where(static e => e.Kind == "message.created")];
        Assert.True(created.Single(static e => e.Root.GetProperty("data").GetProperty("wamid").GetString() == "wamid.s.h")
            .Root.GetProperty("data").GetProperty("history").GetBoolean());
        Assert.False(created.Single(static e => e.Root.GetProperty("data").GetProperty("wamid").GetString() == "wamid.s.live")
            .Root.GetProperty("data").GetProperty("history").GetBoolean());
        StreamMessage sync = stream.Events.Single(static e => e.Kind == "history.sync");
        Assert.Equal("completed", sync.Root.GetProperty("data").GetProperty("state").GetString());
        Assert.Equal("Jörg", stream.Events.Single(static e => e.Kind == "contact_book.updated").Root.GetProperty("data").GetProperty("full_name").GetString());

        // A replay from seq 0 reads the same events back from the log (each with its row as it is now).
        await using StreamClient replay = await StreamClient.OpenSseAsync(_gateway.Address, GatewayHost.MintToken(account), account, since: account + ":0");
        await replay.WaitForAsync(m => m.Count(static e => e.Type == "event") >= stream.Events.Count(), "the replay");
        Assert.Equal(stream.Events.Select(static e => (e.Seq, e.Kind)), replay.Events.Take(stream.Events.Count()).Select(static e => (e.Seq, e.Kind)));
        Assert.True(replay.Events.Single(static e => e.Kind == "message.created" && e.Root.GetProperty("data").GetProperty("wamid").GetString() == "wamid.s.h")
            .Root.GetProperty("data").GetProperty("history").GetBoolean());
    }

    /// <summary>
    /// A backfill waiting in the inbox does not hold back live messages: a gateway without a sequencer acknowledges
    /// 5,000 history messages and then one live message on another account; a sequencing gateway started after that
    /// makes the live message visible before it has projected even a fifth of the history (it takes 100 history
    /// records per statement after the live ones), and then the whole history. The live message is committed in a
    /// transaction of its own, which carries no history: a live event never waits for a history slice to be projected
    /// in its own statement.
    /// </summary>
    [Fact]
    public async Task Backfill_WaitingInTheInbox_DoesNotHoldBackLiveMessages()
    {
        string database = await postgres.Server.CreateDatabaseAsync("backfill_priority");
        await using (GatewayHost acknowledger = await GatewayHost.StartAsync(database, "--Memo:Sequencer:Loops=0"))
        {
            for (int chunk = 0; chunk < 5; chunk++)
            {
                string[] messages = [.. Enumerable.Range(0, 1000).Select(i =>
                    P.HistoryText($"wamid.bf.{chunk}.{i}", "4915550001", 1690000000 + (chunk * 1000) + i, "old", "READ"))];
                await AcknowledgeAsync(acknowledger, P.HistoryChunk("PNbackfill", 1, chunk, chunk * 20, [P.Thread("4915550001", messages)]));
            }

            await AcknowledgeAsync(acknowledger, WebhookPayloads.Envelope("PNlive",
                messages: [WebhookPayloads.TextMessage("wamid.live.now", "4915550002", 1700000000, "now")]));
        }

        await using GatewayHost sequencer = await GatewayHost.StartAsync(database, "--Memo:Sequencer:HistoryRecordsPerRound=100");
        await Eventually.TrueAsync(async () => await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE wamid = 'wamid.live.now'") == 1,
            "the live message is sequenced");
        long historyAtLive = await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE origin = 'history'");
        Assert.True(historyAtLive < 1000, $"{historyAtLive} history messages were projected before the live one");
        Assert.Equal(0, await Database.CountAsync(database,
            "SELECT count(*) FROM messages WHERE origin = 'history' AND xmin = (SELECT xmin FROM messages WHERE wamid = 'wamid.live.now')"));
        await Eventually.TrueAsync(async () => await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE origin = 'history'") == 5000,
            "the whole backfill is sequenced");
        Assert.Equal("", await Database.SequencedTwiceAsync(database));
    }

    /// <summary>Posts and checks the 200 without waiting for sequencing (there is no sequencer).</summary>
    private static async Task AcknowledgeAsync(GatewayHost gateway, string body)
    {
        using HttpResponseMessage response = await gateway.Client.SendAsync(WebhookRequest.Create(System.Text.Encoding.UTF8.GetBytes(body), GatewayHost.Secret));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private async Task<JsonElement> HistoryAsync(string account)
    {
        using JsonDocument document = JsonDocument.Parse(await _gateway.Client.GetStringAsync($"/v1/accounts/{account}/history"));
        return document.RootElement.GetProperty("history").Clone();
    }

    /// <summary>
    /// Backfill chunks have a queue and a writer of their own: while one is still being written (stalled here for 5 s),
    /// a live webhook is acknowledged at once, even with a single live writer. Shared writers would make it wait.
    /// </summary>
    [Fact]
    public async Task ALiveWebhook_IsAcknowledged_WhileAHistoryChunkIsStillBeingWritten()
    {
        await using GatewayHost gateway = await GatewayHost.StartAsync(await postgres.Server.CreateDatabaseAsync("history_lane"),
            "--Memo:Ingest:Writers=1", "--Memo:Ingest:HistoryWriters=1");
        gateway.App.Services.GetRequiredService<Memo.Ingest.Testing.FaultInjector>().Arm(Memo.Ingest.Testing.FaultInjector.HistoryBatchStall);
        string chunk = P.HistoryChunk("PNlane", 1, 1, 10,
            [P.Thread("4915553", [.. Enumerable.Range(0, 500).Select(static i => P.HistoryText($"wamid.lane.h{i}", "4915553", 1680000000 + i, "old", "READ"))])]);
        Task<HttpResponseMessage> history = gateway.Client.SendAsync(WebhookRequest.Create(System.Text.Encoding.UTF8.GetBytes(chunk), GatewayHost.Secret));
        await Task.Delay(500);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        using HttpResponseMessage live = await gateway.Client.SendAsync(WebhookRequest.Create(System.Text.Encoding.UTF8.GetBytes(
            WebhookPayloads.Envelope("PNlane", messages: [WebhookPayloads.TextMessage("wamid.lane.live", "4915553", 1700000000, "now")])), GatewayHost.Secret));
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"the live webhook waited {clock.Elapsed.TotalSeconds:F1} s behind the history chunk");
        Assert.False(history.IsCompleted, "the history chunk should still be stalled");
        using HttpResponseMessage historyAnswer = await history;
        Assert.Equal(HttpStatusCode.OK, historyAnswer.StatusCode);
        await gateway.SequencedAsync();
        Assert.Equal(501, await Database.CountAsync(gateway.ConnectionString, "SELECT count(*) FROM messages WHERE account = 'PNlane'"));
    }
}
