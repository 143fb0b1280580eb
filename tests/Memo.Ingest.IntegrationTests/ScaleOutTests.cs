using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Memo.Ingest.Ingest;
using Memo.Ingest.TestSupport;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>Two gateway processes behind a round-robin sender, sharing PostgreSQL and Redis.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ScaleOutTests(PostgresFixture postgres)
{
    [Fact]
    public async Task TwoProcesses_DuplicatedStreamRoundRobin_EveryMessageOnce_AndEventsCrossBetweenThem()
    {
        string database = await postgres.Server.CreateDatabaseAsync("scaleout");
        await using RedisServer redis = await RedisServer.StartAsync();
        // A is a separate OS process; B runs in this test process, so its bus can be listened to directly.
        await using GatewayProcess a = await GatewayProcess.StartAsync(database, PostgresServer.FreePort(), redis.ConnectionString);
        await a.WaitForRedisAsync();
        await using GatewayHost b = await RedisDeduplicationTests.StartWithRedisAsync(database, redis);
        var heard = new EventBusTests.Listener(b);
        HttpClient[] instances = [a.Client, b.Client];
        string[] accounts = ["PNscale1", "PNscale2", "PNscale3", "PNscale4"];

        // Following starts with one message per account that only A ingests.
        foreach (string account in accounts)
        {
            await PostAsync(a.Client, account, $"wamid.{account}.onlyA", 1);
            await Eventually.TrueAsync(() => heard.Has(account), $"B hears of {account}, ingested on A");
        }

        // 200 messages, each delivered three times; every delivery goes to the next instance in turn.
        var acknowledged = new ConcurrentDictionary<string, int>();
        int turn = 0;
        var deliveries = Enumerable.Range(0, 200).SelectMany(i => Enumerable.Repeat(i, 3)).ToArray();
        await Parallel.ForEachAsync(deliveries, new ParallelOptions { MaxDegreeOfParallelism = 12 }, async (i, _) =>
        {
            string account = accounts[i % accounts.Length];
            string wamid = $"wamid.{account}.rr.{i}";
            HttpClient instance = instances[Interlocked.Increment(ref turn) % instances.Length];
            await PostAsync(instance, account, wamid, i);
            acknowledged.AddOrUpdate(wamid, 1, static (_, n) => n + 1);
        });

        Assert.Equal(200, acknowledged.Count);
        Assert.All(acknowledged.Values, static n => Assert.Equal(3, n));
        Assert.Equal(204, await Database.CountAsync(database, "SELECT count(*) FROM messages"));
        Assert.Equal(204, await Database.CountAsync(database, "SELECT count(*) FROM account_events WHERE kind = 1"));
        await heard.AssertEverySeqOfTheLogAsync(database, accounts);
        Assert.Equal(204, heard.Events.Count(static e => e.Kind == EventKind.MessageCreated));
    }

    private static async Task PostAsync(HttpClient instance, string account, string wamid, int i)
    {
        byte[] body = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage(wamid, $"49{i % 5}", 1700000000 + i, "r")]));
        using HttpResponseMessage response = await instance.SendAsync(WebhookRequest.Create(body, GatewayHost.Secret));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }
}
