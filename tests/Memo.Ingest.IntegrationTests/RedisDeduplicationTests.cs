using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Memo.Ingest.Redis;
using Memo.Ingest.Storage;
using Memo.Ingest.TestSupport;
using StackExchange.Redis;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>Retried deliveries screened by Redis, with PostgreSQL as the source of truth when Redis is not there.</summary>
[Collection(PostgresCollection.Name)]
public sealed class RedisDeduplicationTests(PostgresFixture postgres)
{
    private const string Screened = "memo.screened_by";

    /// <summary>
    /// For tests that assert Redis recognised a retry: a screen that waits longer than its timeout (50 ms by default)
    /// writes the batch unscreened, the designed fallback (PostgreSQL drops the copies; the stuck-Redis tests cover it).
    /// 50 ms was exceeded once on a busy CI machine, so these give Redis time to answer.
    /// </summary>
    internal const string PatientScreen = "--Memo:Redis:ScreenTimeoutMilliseconds=5000";

    [Fact]
    public async Task Storm_OfOneHundredCopies_StoresOneRow_AndRedisScreensEveryRetry()
    {
        string database = await postgres.Server.CreateDatabaseAsync("storm");
        await using RedisServer redis = await RedisServer.StartAsync();
        await using GatewayHost gateway = await StartWithRedisAsync(database, redis, PatientScreen);
        using var duplicates = new CounterRecorder(gateway.App.Services, "memo.ingest.duplicates", Screened);
        using var redisErrors = new CounterRecorder(gateway.App.Services, "memo.redis.errors", "memo.redis.operation");
        await using ConnectionMultiplexer probe = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        string body = StormPayload("PNstorm");

        // The first delivery is written; only after its commit does Redis learn its ids.
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(body)).StatusCode);
        await Eventually.TrueAsync(async () =>
            await RememberedAsync(probe.GetDatabase(), database, 1700000001, "m:PNstorm:wamid.storm")
            && await RememberedAsync(probe.GetDatabase(), database, 1700000002, "s:PNstorm:wamid.out:delivered"),
            "the committed ids are recorded in Redis");

        HttpResponseMessage[] storm = await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => gateway.PostWebhookAsync(body)));

        Assert.All(storm, static r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.Equal(1, await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE wamid = 'wamid.storm'"));
        Assert.Equal("", await Database.SequencedTwiceAsync(database));
        Assert.Equal(1, await Database.CountAsync(database, "SELECT count(*) FROM message_statuses"));
        Assert.Equal(4, await Database.CountAsync(database, "SELECT last_seq FROM accounts WHERE phone_number_id = 'PNstorm'"));
        // 100 copies × (1 message + 1 status event), every one recognised before PostgreSQL was asked.
        Assert.Equal(0, redisErrors["screen"]);
        Assert.Equal(200, duplicates["redis"]);
        Assert.Equal(0, duplicates["postgresql"]);
    }

    /// <summary>
    /// A webhook of more ids per second than one <c>unpack</c> of the scripts takes (1,000), over two seconds, with
    /// status events of three more: each id is remembered in its second's set, each set lives for the TTL, and a
    /// redelivery is screened by Redis id by id.
    /// </summary>
    [Fact]
    public async Task LargeWebhook_EveryIdRememberedInItsSecondsSet_ForTheTtl_AndItsRedeliveryScreenedWhole()
    {
        string database = await postgres.Server.CreateDatabaseAsync("storm_large");
        await using RedisServer redis = await RedisServer.StartAsync();
        await using GatewayHost gateway = await StartWithRedisAsync(database, redis, PatientScreen);
        using var duplicates = new CounterRecorder(gateway.App.Services, "memo.ingest.duplicates", Screened);
        await using ConnectionMultiplexer probe = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        const string account = "PNlarge";
        string body = WebhookPayloads.Envelope(account,
            messages: Enumerable.Range(0, 2400).Select(i => WebhookPayloads.TextMessage($"wamid.large.{i}", "49", 1700000000 + (i / 1200), "l")),
            statuses: Enumerable.Range(0, 300).Select(i => WebhookPayloads.Status($"wamid.sent.{i}", "delivered", 1700000100 + (i % 3), "49")));

        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(body)).StatusCode);

        IDatabase sets = probe.GetDatabase();
        string prefix = await KeyAsync(database, "seen:");
        await Eventually.TrueAsync(async () => await sets.SetLengthAsync(prefix + "1700000102") == 100, "the last set is written");
        Assert.Equal(1200, await sets.SetLengthAsync(prefix + "1700000000"));
        Assert.Equal(1200, await sets.SetLengthAsync(prefix + "1700000001"));
        Assert.Equal(100, await sets.SetLengthAsync(prefix + "1700000100"));
        Assert.True(await sets.SetContainsAsync(prefix + "1700000001", $"m:{account}:wamid.large.2399"));
        Assert.True(await sets.SetContainsAsync(prefix + "1700000101", $"s:{account}:wamid.sent.1:delivered"));
        TimeSpan? ttl = await sets.KeyTimeToLiveAsync(prefix + "1700000000");
        Assert.InRange(ttl.GetValueOrDefault(), TimeSpan.FromHours(192) - TimeSpan.FromMinutes(5), TimeSpan.FromHours(192));

        // The redelivery comes with 60 new messages between and after the known ones, in timestamps out of order: the
        // screen's answers (one per id, in the sets' order) must map back to the right records.
        string redelivery = WebhookPayloads.Envelope(account,
            messages: Enumerable.Range(0, 2460).Select(i => i % 41 == 40
                ? WebhookPayloads.TextMessage($"wamid.new.{i}", "49", 1700000001 - (i % 3), "n")
                : WebhookPayloads.TextMessage($"wamid.large.{i - (i / 41)}", "49", 1700000000 + ((i - (i / 41)) / 1200), "l")),
            statuses: Enumerable.Range(0, 300).Select(i => WebhookPayloads.Status($"wamid.sent.{i}", "delivered", 1700000100 + (i % 3), "49")));
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(redelivery)).StatusCode);

        Assert.Equal(2700, duplicates["redis"]);
        Assert.Equal(0, duplicates["postgresql"]);
        // 2,460 inbound messages and a row for each of the 300 outbound messages the statuses name.
        Assert.Equal(60, await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE wamid LIKE 'wamid.new.%'"));
        Assert.Equal(2760, await Database.CountAsync(database, "SELECT count(*) FROM messages"));
        Assert.Equal("", await Database.SequencedTwiceAsync(database));
    }

    [Fact]
    public async Task Storm_WithoutRedis_PostgresqlStoresOneRow_AndTheCounterSaysSo()
    {
        string database = await postgres.Server.CreateDatabaseAsync("storm_pg");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database);
        using var duplicates = new CounterRecorder(gateway.App.Services, "memo.ingest.duplicates", Screened);
        string body = StormPayload("PNstormpg");
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(body)).StatusCode);

        HttpResponseMessage[] storm = await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => gateway.PostWebhookAsync(body)));

        Assert.All(storm, static r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.Equal(1, await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE wamid = 'wamid.storm'"));
        Assert.Equal("", await Database.SequencedTwiceAsync(database));
        Assert.Equal(0, duplicates["redis"]);
        Assert.Equal(200, duplicates["postgresql"]);
    }

    [Fact]
    public async Task RedisStoppedMidRun_EveryAcknowledgedMessageStoredOnce_AndTheGatewayIsBackOnRedisWithoutRestart()
    {
        string database = await postgres.Server.CreateDatabaseAsync("redis_outage");
        await using RedisServer redis = await RedisServer.StartAsync();
        await using GatewayHost gateway = await StartWithRedisAsync(database, redis);
        using var duplicates = new CounterRecorder(gateway.App.Services, "memo.ingest.duplicates", Screened);
        const string account = "PNoutage";
        var acknowledged = new ConcurrentDictionary<string, int>();
        using var stop = new CancellationTokenSource();

        // Six senders; each message is delivered twice (the retry right after the first answer), as Meta does when
        // an acknowledgement is lost.
        Task[] senders = Enumerable.Range(0, 6).Select(sender => Task.Run(async () =>
        {
            for (int i = 0; !stop.IsCancellationRequested; i++)
            {
                string wamid = $"wamid.outage.{sender}.{i}";
                string body = WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage(wamid, $"49{sender}", 1700000000 + i, "o")]);
                for (int copy = 0; copy < 2; copy++)
                {
                    using HttpResponseMessage response = await gateway.PostWebhookAsync(body);
                    Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                    acknowledged.AddOrUpdate(wamid, 1, static (_, n) => n + 1);
                }
            }
        })).ToArray();

        await Eventually.TrueAsync(() => acknowledged.Count >= 100, "100 messages acknowledged with Redis up");
        await redis.StopAsync();
        int atStop = acknowledged.Count;
        await Eventually.TrueAsync(() => acknowledged.Count >= atStop + 100, "100 more acknowledged with Redis down");
        await redis.StartAgainAsync();
        await Eventually.TrueAsync(() => gateway.App.Services.GetRequiredService<GatewayRedis>().IsConnected, "the gateway reconnects to Redis");
        int atRestart = acknowledged.Count;
        await Eventually.TrueAsync(() => acknowledged.Count >= atRestart + 100, "100 more acknowledged after the restart");
        await stop.CancelAsync();
        await Task.WhenAll(senders);

        // Every acknowledged message stored (the count forbids less) and sequenced once (the log forbids more) ...
        long stored = await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE account = $1 AND wamid = ANY($2)",
            account, acknowledged.Keys.ToArray());
        Assert.Equal(acknowledged.Count, stored);
        Assert.Equal(acknowledged.Count, await Database.CountAsync(database, "SELECT count(*) FROM messages"));
        Assert.Equal("", await Database.SequencedTwiceAsync(database));
        // ... and each took one seq: 1..N without a gap (one message event and one conversation event each, at most).
        Assert.Equal(await Database.CountAsync(database, "SELECT count(*) FROM account_events"),
            await Database.CountAsync(database, "SELECT max(seq) FROM account_events"));

        // Back on Redis: a retry of a message committed now is screened by Redis again.
        await using ConnectionMultiplexer probe = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        string again = WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage("wamid.after", "49", 1800000000, "a")]);
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(again)).StatusCode);
        await Eventually.TrueAsync(() => RememberedAsync(probe.GetDatabase(), database, 1800000000, $"m:{account}:wamid.after"), "recorded after reconnect");
        long screenedBefore = duplicates["redis"];
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(again)).StatusCode);
        Assert.Equal(screenedBefore + 1, duplicates["redis"]);
    }

    [Fact]
    public async Task StuckRedis_AcknowledgementsDoNotWaitForIt()
    {
        string database = await postgres.Server.CreateDatabaseAsync("redis_stuck");
        await using RedisServer redis = await RedisServer.StartAsync();
        await using GatewayHost gateway = await StartWithRedisAsync(database, redis);
        await using ConnectionMultiplexer admin = await ConnectionMultiplexer.ConnectAsync($"{redis.ConnectionString},allowAdmin=true");

        using var redisErrors = new CounterRecorder(gateway.App.Services, "memo.redis.errors", "memo.redis.operation");
        string warm = WebhookPayloads.TextMessage("wamid.stuck.warm", "49", 1700000000, "w");
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(WebhookPayloads.Envelope("PNstuck", messages: [warm]))).StatusCode);

        // Redis answers nothing for 10 s; each webhook still commits and is answered while Redis is stuck. Each carries a
        // retry of the warm-up message, which this instance appended lately, so the screen asks Redis (and gives up
        // after its timeout) while the connection is still open.
        await admin.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "10000", "ALL");
        var paused = Stopwatch.StartNew();
        for (int i = 0; i < 5; i++)
        {
            string body = WebhookPayloads.Envelope("PNstuck", messages: [warm, WebhookPayloads.TextMessage($"wamid.stuck.{i}", "49", 1700000000 + i, "s")]);
            Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(body)).StatusCode);
        }

        Assert.True(redisErrors["screen"] >= 1, "the screen never asked the stuck Redis");
        Assert.True(paused.Elapsed < TimeSpan.FromSeconds(10), "the acknowledgements waited for Redis");
        Assert.Equal(6, await Database.CountAsync(database, "SELECT count(*) FROM messages"));
        Assert.Equal("", await Database.SequencedTwiceAsync(database));
    }

    [Fact]
    public async Task MalformedRedisConnectionString_StopsTheStartWithTheReason()
    {
        string database = await postgres.Server.CreateDatabaseAsync("redis_config");
        var error = await Assert.ThrowsAsync<FormatException>(() => GatewayHost.StartAsync(database, "--ConnectionStrings:Redis=127.0.0.1:6379,passwrd=typo"));
        Assert.Contains("passwrd", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnreachableRedis_TheGatewayStartsAndStoresWithPostgresqlAlone()
    {
        string database = await postgres.Server.CreateDatabaseAsync("redis_absent");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database, $"--ConnectionStrings:Redis=127.0.0.1:{PostgresServer.FreePort()},connectTimeout=200");
        string body = WebhookPayloads.Envelope("PNnoredis", messages: [WebhookPayloads.TextMessage("wamid.noredis", "49", 1700000000, "n")]);

        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(body)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(body)).StatusCode);
        Assert.Equal(1, await Database.CountAsync(database, "SELECT count(*) FROM messages"));
        Assert.Equal("", await Database.SequencedTwiceAsync(database));
        string ready = await gateway.Client.GetStringAsync("/readyz");
        Assert.Contains("\"status\":\"ready\"", ready, StringComparison.Ordinal);
        Assert.Contains("\"redis\":\"disconnected\"", ready, StringComparison.Ordinal);
    }

    /// <summary>
    /// Redis remembers committed ids per database: a gateway pointed at a new database beside a Redis that served
    /// another one, or at its database dropped and restored (here: recreated empty under the same name), stores every
    /// redelivered message instead of trusting the old keys and answering 200 for messages it does not have.
    /// </summary>
    [Theory]
    [InlineData("another database")]
    [InlineData("the same database restored")]
    public async Task RedisKeysOfAnotherOrEarlierDatabase_NeverScreenARedeliveryOut(string scenario)
    {
        string first = await postgres.Server.CreateDatabaseAsync("redis_identity");
        await using RedisServer redis = await RedisServer.StartAsync();
        const string account = "PNidentity";
        string[] corpus = [.. Enumerable.Range(0, 40).Select(i => WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage($"wamid.identity.{i}", "49", 1700000000 + i, "c")]))];
        await using (GatewayHost before = await StartWithRedisAsync(first, redis))
        {
            foreach (string body in corpus)
            {
                Assert.Equal(HttpStatusCode.OK, (await before.PostWebhookAsync(body)).StatusCode);
            }

            // Redis knows every one of them (under the first database's identity).
            await using ConnectionMultiplexer probe = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
            await Eventually.TrueAsync(() => RememberedAsync(probe.GetDatabase(), first, 1700000039, $"m:{account}:wamid.identity.39"), "the ids are remembered");
        }

        string second = scenario == "another database" ? await postgres.Server.CreateDatabaseAsync("redis_identity_new") : await RecreateAsync(first);
        await using GatewayHost after = await StartWithRedisAsync(second, redis);
        using var duplicates = new CounterRecorder(after.App.Services, "memo.ingest.duplicates", Screened);

        // Meta redelivers the corpus. Each redelivery also carries a message this gateway has just appended, so that
        // every batch is screened (the screen runs while retries arrive): without scoping, Redis' old keys would
        // screen every message of the corpus out.
        string primer = WebhookPayloads.TextMessage("wamid.identity.primer", "49", 1700000100, "p");
        Assert.Equal(HttpStatusCode.OK, (await after.PostWebhookAsync(WebhookPayloads.Envelope(account, messages: [primer]))).StatusCode);
        for (int copy = 0; copy < 2; copy++)
        {
            await Parallel.ForEachAsync(Enumerable.Range(0, 40), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
            {
                string body = WebhookPayloads.Envelope(account, messages: [primer, WebhookPayloads.TextMessage($"wamid.identity.{i}", "49", 1700000000 + i, "c")]);
                using HttpResponseMessage response = await after.PostWebhookAsync(body);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            });
        }

        Assert.Equal(41, await Database.CountAsync(second, "SELECT count(*) FROM messages"));
        Assert.Equal("", await Database.SequencedTwiceAsync(second));
        Assert.True(duplicates["redis"] > 0, "the second copies were screened by Redis (under the new database's identity)");
    }

    /// <summary>Drops the database and creates an empty one of the same name, as a restore from an older backup would.</summary>
    private async Task<string> RecreateAsync(string database)
    {
        string name = new NpgsqlConnectionStringBuilder(database).Database!;
        NpgsqlConnection.ClearAllPools();
        await using var admin = new NpgsqlConnection(postgres.Server.AdminConnectionString);
        await admin.OpenAsync();
        foreach (string sql in (string[])[$"DROP DATABASE \"{name}\" WITH (FORCE)", $"CREATE DATABASE \"{name}\""])
        {
            await using var command = new NpgsqlCommand(sql, admin);
            await command.ExecuteNonQueryAsync();
        }

        return database;
    }

    /// <summary>A screen key as the gateway writes it for <paramref name="database"/>.</summary>
    internal static async Task<string> KeyAsync(string database, string key)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        return "memo:" + System.Text.Encoding.ASCII.GetString(await DatabaseIdentity.ReadAsync(connection)) + key;
    }

    /// <summary>
    /// Whether Redis remembers <paramref name="member"/> (<c>m:{account}:{wamid}</c> or <c>s:{account}:{wamid}:{status}</c>)
    /// as committed to <paramref name="database"/>, in the set of the record's <paramref name="timestamp"/>.
    /// </summary>
    internal static async Task<bool> RememberedAsync(IDatabase redis, string database, long timestamp, string member) =>
        await redis.SetContainsAsync(await KeyAsync(database, $"seen:{timestamp}"), member);

    internal static Task<GatewayHost> StartWithRedisAsync(string database, RedisServer redis, params string[] extraArguments) =>
        StartWithRedisAsync(database, redis.ConnectionString, extraArguments);

    internal static async Task<GatewayHost> StartWithRedisAsync(string database, string redis, params string[] extraArguments)
    {
        GatewayHost gateway = await GatewayHost.StartAsync(database, [$"--ConnectionStrings:Redis={redis}", .. extraArguments]);
        await Eventually.TrueAsync(() => gateway.App.Services.GetRequiredService<GatewayRedis>().IsConnected, "the gateway connects to Redis");
        return gateway;
    }

    private static string StormPayload(string account) => WebhookPayloads.Envelope(account,
        contacts: [WebhookPayloads.Contact("4915550001", "Ann")],
        messages: [WebhookPayloads.TextMessage("wamid.storm", "4915550001", 1700000001, "storm")],
        statuses: [WebhookPayloads.Status("wamid.out", "delivered", 1700000002, "4915550001")]);
}
