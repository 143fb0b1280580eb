using System.Net;
using System.Text;
using System.Text.Json;
using Memo.Ingest.TestSupport;
using Microsoft.Extensions.Logging;
using Npgsql;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// Data that PostgreSQL cannot store as it is never becomes a 5xx that Meta retries for days: what the gateway can check
/// is checked before the database (400), what only the database can refuse is kept in <c>dead_letters</c> with the
/// reason (200, a Warning and a counter), and values that text cannot hold are stored with the raw JSON byte for byte.
/// The refusals are real: a CHECK constraint added to a table makes PostgreSQL refuse one value, as it would refuse
/// anything else it cannot store.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class RefusedDataTests(PostgresFixture postgres)
{
    private const string DeadLetters = "memo.ingest.dead_letters";

    [Fact]
    public async Task Post_NulEscapeInText_Stored_TextColumnReplaced_RawPayloadByteExact()
    {
        string database = await postgres.Server.CreateDatabaseAsync("nul");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database);
        string message = WebhookPayloads.TextMessage("wamid.nul", "491", 1700000000, "a\\u0000b");
        string body = WebhookPayloads.Envelope("PNnul", messages: [message], contacts: [WebhookPayloads.Contact("491", "N\\u0000")]);

        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(body)).StatusCode);

        JsonElement item = Assert.Single(await SyncClient.GetAllAsync(gateway.Client, "PNnul", "messages"));
        Assert.Equal("a\uFFFDb", item.GetProperty("text").GetString());
        Assert.Equal("a\0b", item.GetProperty("payload").GetProperty("text").GetProperty("body").GetString());
        Assert.Equal("N\uFFFD", Assert.Single(await SyncClient.GetAllAsync(gateway.Client, "PNnul", "contacts")).GetProperty("profile_name").GetString());
        Assert.Equal(Encoding.UTF8.GetBytes(message), await PayloadAsync(database, "wamid.nul"));
    }

    [Fact]
    public async Task Post_NumberBeyondNumeric_StoredByteExact()
    {
        string database = await postgres.Server.CreateDatabaseAsync("bignumber");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database);
        string message = """{"from":"491","id":"wamid.big","timestamp":"1700000000","type":"text","text":{"body":"n"},"n":1e999999}""";

        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(WebhookPayloads.Envelope("PNbig", messages: [message]))).StatusCode);

        Assert.Equal(Encoding.UTF8.GetBytes(message), await PayloadAsync(database, "wamid.big"));
        JsonElement item = Assert.Single(await SyncClient.GetAllAsync(gateway.Client, "PNbig", "messages"));
        Assert.Equal("1e999999", item.GetProperty("payload").GetProperty("n").GetRawText());
    }

    [Fact]
    public async Task Post_RefusedWhenAppended_WebhookKeptWholeInDeadLetters_Answered200_NeighboursStored()
    {
        string database = await postgres.Server.CreateDatabaseAsync("refused_ack");
        var logs = new LogCapture();
        await using GatewayHost gateway = await GatewayHost.StartAsync(database, logs);
        await ExecuteAsync(database, "ALTER TABLE inbox ADD CONSTRAINT refuse_poison CHECK (body IS DISTINCT FROM 'poison at the inbox')");
        using var deadLetters = new CounterRecorder(gateway.App.Services, DeadLetters, "memo.stage");
        const string account = "PNrefack";

        byte[][] bodies = [.. Enumerable.Range(0, 40).Select(i => Encoding.UTF8.GetBytes(WebhookPayloads.Envelope(account,
            messages: [WebhookPayloads.TextMessage($"wamid.ack{i}", "491", 1700000000 + i, i == 17 ? "poison at the inbox" : "fine")])))];
        HttpResponseMessage[] responses = await Task.WhenAll(bodies.Select(b => gateway.PostWebhookAsync(b)));

        // Every signed webhook is answered 200: the refused one is safely kept, and a 4xx or 5xx would only bring it back.
        Assert.All(responses, static r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        List<JsonElement> stored = await SyncClient.GetAllAsync(gateway.Client, account, "messages");
        Assert.Equal(39, stored.Count);
        Assert.DoesNotContain(stored, static m => m.GetProperty("wamid").GetString() == "wamid.ack17");
        (string Stage, string SqlState, byte[] Body) letter = Assert.Single(await DeadLettersAsync(database));
        Assert.Equal(("ack", "23514"), (letter.Stage, letter.SqlState));
        Assert.Equal(bodies[17], letter.Body);
        Assert.Equal(1, deadLetters["ack"]);
        Assert.Contains(logs.Entries, static e => e.EventId.Name == "WebhookDeadLettered" && e.Level == LogLevel.Warning);
    }

    /// <summary>
    /// The same through the acknowledgement's binary COPY (webhooks of more records than
    /// <see cref="Storage.InboxAppender.CopyFromRows"/>): PostgreSQL refuses the COPY when it ends, the webhook that holds
    /// the refused value is kept whole, its neighbours are stored, and the writer's connection goes on working.
    /// </summary>
    [Fact]
    public async Task Post_RefusedInACopy_WebhookKeptWholeInDeadLetters_Answered200_NeighboursStored()
    {
        string database = await postgres.Server.CreateDatabaseAsync("refused_copy");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database);
        await ExecuteAsync(database, "ALTER TABLE inbox ADD CONSTRAINT refuse_poison CHECK (body IS DISTINCT FROM 'poison in a copy')");
        const string account = "PNrefcopy";
        int perWebhook = Storage.InboxAppender.CopyFromRows + 6;

        byte[][] bodies = [.. Enumerable.Range(0, 6).Select(w => Encoding.UTF8.GetBytes(WebhookPayloads.Envelope(account,
            messages: [.. Enumerable.Range(0, perWebhook).Select(i => WebhookPayloads.TextMessage($"wamid.copy{w}.{i}", "491", 1700000000 + i,
                w == 4 && i == 33 ? "poison in a copy" : "fine"))])))];
        HttpResponseMessage[] responses = await Task.WhenAll(bodies.Select(b => gateway.PostWebhookAsync(b)));

        Assert.All(responses, static r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        List<JsonElement> stored = await SyncClient.GetAllAsync(gateway.Client, account, "messages");
        Assert.Equal(5 * perWebhook, stored.Count);
        Assert.DoesNotContain(stored, static m => m.GetProperty("wamid").GetString()!.StartsWith("wamid.copy4.", StringComparison.Ordinal));
        (string Stage, string SqlState, byte[] Body) letter = Assert.Single(await DeadLettersAsync(database));
        Assert.Equal(("ack", "23514"), (letter.Stage, letter.SqlState));
        Assert.Equal(bodies[4], letter.Body);

        // The writers' connections were not left inside a failed COPY.
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(WebhookPayloads.Envelope(account,
            messages: [.. Enumerable.Range(0, perWebhook).Select(i => WebhookPayloads.TextMessage($"wamid.after{i}", "491", 1700000100 + i, "after"))]))).StatusCode);
        Assert.Equal(6 * perWebhook, (await SyncClient.GetAllAsync(gateway.Client, account, "messages")).Count);
    }

    [Fact]
    public async Task Post_RefusedWhenSequenced_RecordKeptInDeadLetters_NeighboursSequenced_ShardGoesOn()
    {
        string database = await postgres.Server.CreateDatabaseAsync("refused_seq");
        var logs = new LogCapture();
        await using GatewayHost gateway = await GatewayHost.StartAsync(database, logs);
        await ExecuteAsync(database, "ALTER TABLE messages ADD CONSTRAINT refuse_poison CHECK (body IS DISTINCT FROM 'poison at the sequencer')");
        using var deadLetters = new CounterRecorder(gateway.App.Services, DeadLetters, "memo.stage");
        const string account = "PNrefseq";

        // Acknowledged together, so that the refused record is sequenced in a batch with its neighbours.
        string[] messages = [.. Enumerable.Range(0, 40).Select(i =>
            WebhookPayloads.TextMessage($"wamid.seq{i}", "491", 1700000000 + i, i == 23 ? "poison at the sequencer" : "fine"))];
        HttpResponseMessage[] responses = await Task.WhenAll(messages.Select(m => gateway.Client.SendAsync(
            WebhookRequest.Create(Encoding.UTF8.GetBytes(WebhookPayloads.Envelope(account, messages: [m])), GatewayHost.Secret))));
        Assert.All(responses, static r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        await gateway.SequencedAsync();

        List<JsonElement> stored = await SyncClient.GetAllAsync(gateway.Client, account, "messages");
        Assert.Equal(39, stored.Count);
        (string Stage, string SqlState, byte[] Body) letter = Assert.Single(await DeadLettersAsync(database));
        Assert.Equal(("sequencer", "23514"), (letter.Stage, letter.SqlState));
        Assert.Equal(Encoding.UTF8.GetBytes(messages[23]), letter.Body);
        Assert.Equal(1, await Database.CountAsync(database, "SELECT count(*) FROM dead_letters WHERE account = 'PNrefseq' AND record->>'msg_id' = 'wamid.seq23'"));
        Assert.Equal(1, deadLetters["sequencer"]);
        Assert.Contains(logs.Entries, static e => e.EventId.Name == "RecordDeadLettered" && e.Level == LogLevel.Warning);

        // The shard is not stuck behind the refused record.
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(WebhookPayloads.Envelope(account,
            messages: [WebhookPayloads.TextMessage("wamid.after", "491", 1700000100, "after")]))).StatusCode);
        Assert.Equal(40, (await SyncClient.GetAllAsync(gateway.Client, account, "messages")).Count);
    }

    /// <summary>
    /// A history message that PostgreSQL refuses when it is sequenced goes to dead_letters alone: the backfill's other
    /// messages and a live message acknowledged before the chunk (older in the inbox) are all stored. History is
    /// isolated apart from live records, so the refused record is the oldest history record, never an older live one.
    /// </summary>
    [Fact]
    public async Task HistoryRefusedWhenSequenced_OnlyThatMessageDeadLettered_LiveAndRestOfTheBackfillStored()
    {
        string database = await postgres.Server.CreateDatabaseAsync("refused_history");
        const string account = "PNrefhist";
        await using (GatewayHost acknowledger = await GatewayHost.StartAsync(database, "--Memo:Sequencer:Loops=0"))
        {
            // Posted without waiting for sequencing: this gateway has no sequencer.
            Assert.Equal(HttpStatusCode.OK, (await acknowledger.Client.SendAsync(WebhookRequest.Create(Encoding.UTF8.GetBytes(WebhookPayloads.Envelope(account,
                messages: [WebhookPayloads.TextMessage("wamid.rh.live", "4915557", 1700000000, "fine")])), GatewayHost.Secret))).StatusCode);
            string[] history = [.. Enumerable.Range(0, 300).Select(static i => CoexistencePayloads.HistoryText(
                $"wamid.rh.{i}", "4915557", 1690000000 + i, i == 230 ? "poison at the sequencer" : "old", "READ"))];
            Assert.Equal(HttpStatusCode.OK, (await acknowledger.Client.SendAsync(WebhookRequest.Create(Encoding.UTF8.GetBytes(
                CoexistencePayloads.HistoryChunk(account, 1, 1, 100, [CoexistencePayloads.Thread("4915557", history)])), GatewayHost.Secret))).StatusCode);
        }

        await ExecuteAsync(database, "ALTER TABLE messages ADD CONSTRAINT refuse_poison CHECK (body IS DISTINCT FROM 'poison at the sequencer')");
        await using GatewayHost sequencer = await GatewayHost.StartAsync(database);
        await Eventually.TrueAsync(async () => await Database.CountAsync(database, "SELECT count(*) FROM inbox") == 0, "the inbox is drained");

        Assert.Equal(1, await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE wamid = 'wamid.rh.live'"));
        Assert.Equal(299, await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE origin = 'history'"));
        Assert.Equal(1, await Database.CountAsync(database, "SELECT count(*) FROM dead_letters"));
        Assert.Equal(1, await Database.CountAsync(database,
            "SELECT count(*) FROM dead_letters WHERE stage = 'sequencer' AND sqlstate = '23514' AND record->>'msg_id' = 'wamid.rh.230'"));
    }

    private static async Task<byte[]> PayloadAsync(string database, string wamid)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT payload FROM messages WHERE wamid = $1", connection);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = wamid });
        return (byte[])(await command.ExecuteScalarAsync())!;
    }

    private static async Task<List<(string Stage, string SqlState, byte[] Body)>> DeadLettersAsync(string database)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT stage, sqlstate, body FROM dead_letters ORDER BY id", connection);
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
        var letters = new List<(string, string, byte[])>();
        while (await reader.ReadAsync())
        {
            letters.Add((reader.GetString(0), reader.GetString(1), reader.GetFieldValue<byte[]>(2)));
        }

        return letters;
    }

    private static async Task ExecuteAsync(string database, string sql)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}
