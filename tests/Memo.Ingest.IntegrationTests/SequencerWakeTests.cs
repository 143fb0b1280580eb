using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using Memo.Ingest.Redis;
using Memo.Ingest.Sequencing;
using Memo.Ingest.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// A writer wakes only the sequencer sessions that hold the shards of what it appended (Sequencer.Wake with a mask of
/// shards), here and on other instances through Redis: another session would run a statement that finds nothing, at a
/// round's full fixed cost, for every webhook.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class SequencerWakeTests(PostgresFixture postgres, Xunit.Abstractions.ITestOutputHelper output)
{
    private const int Webhooks = 300;

    [Fact]
    public async Task TwoSessions_WebhooksOfOneAccount_WakeOnlyTheSessionThatHoldsItsShard()
    {
        string database = await postgres.Server.CreateDatabaseAsync("sequencerwake");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database,
            "--Memo:Sequencer:Loops=2", "--Memo:Sequencer:RebalanceMilliseconds=200");

        await WaitForTwoSessionsAsync(database);
        double before = await EmptyRoundsAsync(gateway);
        var sending = Stopwatch.StartNew();
        for (int n = 0; n < Webhooks; n++)
        {
            byte[] body = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope("PNrecv0",
                messages: [WebhookPayloads.TextMessage($"wamid.wake.{n}", "4917000", 1700000000 + n, "wake")]));
            using HttpResponseMessage response = await gateway.Client.SendAsync(WebhookRequest.Create(body, GatewayHost.Secret));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        TimeSpan sent = sending.Elapsed;
        await SequencedWait.UntilSequencedAsync(database);
        double empty = await EmptyRoundsAsync(gateway) - before;

        // Idle polls (two sessions, one every 100 ms each) and the owner's own empty rounds (a wake-up whose record a
        // round already in progress took) are expected; one empty round of the other session per webhook is not.
        double polls = 2 * (sending.Elapsed.TotalMilliseconds / 100 + 1);
        output.WriteLine($"{Webhooks} webhooks in {sent.TotalSeconds:F2} s: {empty} empty rounds ({polls:F0} polls at most)");
        Assert.True(empty < polls + Webhooks / 3,
            $"{empty} statements found nothing while {Webhooks} webhooks of one account were sequenced: the session that does not hold its shard was woken too");
        Assert.Equal(Webhooks, await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE account = 'PNrecv0'"));
    }

    /// <summary>
    /// Two instances, one session each, woken across through Redis: the instance whose session does not hold the
    /// account's shard is not woken for its webhooks, whichever instance acknowledged them.
    /// </summary>
    [Fact]
    public async Task TwoInstances_WebhooksOfOneAccount_WakeOnlyTheInstanceThatHoldsItsShard()
    {
        string database = await postgres.Server.CreateDatabaseAsync("sequencerwakeredis");
        await using RedisServer redis = await RedisServer.StartAsync();
        await using GatewayHost first = await RedisDeduplicationTests.StartWithRedisAsync(database, redis, "--Memo:Sequencer:RebalanceMilliseconds=200",
            "--Memo:Sequencer:Loops=1");
        await using GatewayHost second = await RedisDeduplicationTests.StartWithRedisAsync(database, redis, "--Memo:Sequencer:RebalanceMilliseconds=200",
            "--Memo:Sequencer:Loops=1");
        await WaitForTwoSessionsAsync(database);

        const int PerInstance = 200;
        double before = await EmptyRoundsAsync(first) + await EmptyRoundsAsync(second);
        var sending = Stopwatch.StartNew();
        for (int n = 0; n < 2 * PerInstance; n++)
        {
            byte[] body = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope("PNrecv0",
                messages: [WebhookPayloads.TextMessage($"wamid.wakeredis.{n}", "4917000", 1700000000 + n, "wake")]));
            using HttpResponseMessage response = await (n % 2 == 0 ? first : second).Client.SendAsync(WebhookRequest.Create(body, GatewayHost.Secret));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        await SequencedWait.UntilSequencedAsync(database);
        double empty = await EmptyRoundsAsync(first) + await EmptyRoundsAsync(second) - before;
        double polls = 2 * (sending.Elapsed.TotalMilliseconds / 100 + 1);
        output.WriteLine($"{2 * PerInstance} webhooks in {sending.Elapsed.TotalSeconds:F2} s: {empty} empty rounds ({polls:F0} polls at most)");
        Assert.True(empty < polls + PerInstance / 2,
            $"{empty} statements found nothing while {2 * PerInstance} webhooks of one account were sequenced: the instance that does not hold its shard was woken through Redis");
        Assert.Equal(2 * PerInstance, await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE account = 'PNrecv0'"));
    }

    /// <summary>
    /// A wake-up goes through Redis only for shards that no session of the appending instance holds: the instance that
    /// holds every shard publishes none for its own webhooks, and one without sessions wakes the holder. The holder polls
    /// once a minute and rebalances every ten, so that only the wake-up can explain its prompt rounds.
    /// </summary>
    [Fact]
    public async Task AWakeUpGoesThroughRedis_OnlyForShardsHeldElsewhere()
    {
        string database = await postgres.Server.CreateDatabaseAsync("sequencerwakeelsewhere");
        await using RedisServer redis = await RedisServer.StartAsync();
        await using GatewayHost holder = await RedisDeduplicationTests.StartWithRedisAsync(database, redis, "--Memo:Sequencer:Loops=1",
            "--Memo:Sequencer:PollMilliseconds=60000", "--Memo:Sequencer:RebalanceMilliseconds=600000");
        await using ConnectionMultiplexer probe = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var wakeUps = new ConcurrentQueue<ulong>();
        await probe.GetSubscriber().SubscribeAsync(holder.App.Services.GetRequiredService<GatewayRedis>().InboxChannel, (_, payload) =>
        {
            // The origin's id and the mask of shards to wake (an empty mask is a rebalance request, not a wake-up).
            byte[] bytes = (byte[])payload!;
            if (bytes.Length > sizeof(ulong) && BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(bytes.Length - sizeof(ulong))) is ulong mask and not 0)
            {
                wakeUps.Enqueue(mask);
            }
        });

        await Eventually.TrueAsync(async () => await Database.CountAsync(database, ShardBalanceTests.HeldShards) == 64,
            "the holder's session holds every shard", seconds: 20);
        await using GatewayHost acknowledger = await RedisDeduplicationTests.StartWithRedisAsync(database, redis, "--Memo:Sequencer:Loops=0");

        async Task PostAsync(GatewayHost gateway, string account)
        {
            for (int n = 0; n < 20; n++)
            {
                byte[] body = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope(account,
                    messages: [WebhookPayloads.TextMessage($"wamid.{account}.{n}", "4917000", 1700000000 + n, "wake")]));
                using HttpResponseMessage response = await gateway.Client.SendAsync(WebhookRequest.Create(body, GatewayHost.Secret));
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
        }

        ulong heldShard = AccountShard.MaskOf("PNheld"u8);
        ulong elsewhereShard = AccountShard.MaskOf("PNelsewhere"u8);
        Assert.NotEqual(heldShard, elsewhereShard);

        // The holder's own webhooks: its session is woken in-process, and nothing goes through Redis.
        await PostAsync(holder, "PNheld");
        await SequencedWait.UntilSequencedAsync(database, seconds: 10);
        await Task.Delay(300);
        Assert.Empty(wakeUps);

        // The acknowledger holds no shard: each of its batches wakes the holder, for that account's shard alone.
        await PostAsync(acknowledger, "PNelsewhere");
        await SequencedWait.UntilSequencedAsync(database, seconds: 10);
        await Task.Delay(300);
        output.WriteLine($"{wakeUps.Count} wake-ups through Redis for the acknowledger's 20 webhooks");
        Assert.InRange(wakeUps.Count, 1, 20);
        Assert.All(wakeUps, mask => Assert.Equal(elsewhereShard, mask));
        Assert.Equal(40, await Database.CountAsync(database, "SELECT count(*) FROM messages"));
    }

    /// <summary>Until two sequencer sessions both hold shards (the idle ones shared out evenly), and the assignment has settled.</summary>
    private static async Task WaitForTwoSessionsAsync(string database)
    {
        var waited = Stopwatch.StartNew();
        while (await Database.CountAsync(database, ShardBalanceTests.ShardHolders) < 2)
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(20), "two sequencer sessions never both held shards");
            await Task.Delay(100);
        }

        await Task.Delay(TimeSpan.FromSeconds(1));
    }

    private static async Task<double> EmptyRoundsAsync(GatewayHost gateway)
    {
        string metrics = await gateway.Client.GetStringAsync("/metrics");
        string line = metrics.Split('\n').Single(static l => l.StartsWith("memo_sequencer_rounds_empty_total", StringComparison.Ordinal));
        return double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
    }
}
