using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Memo.Ingest.Ingest;
using Memo.Ingest.TestSupport;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>Several gateway processes behind a round-robin sender, sharing PostgreSQL and Redis.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ScaleOutTests(PostgresFixture postgres, Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task TwoProcesses_DuplicatedStreamRoundRobin_EveryMessageOnce_AndEventsCrossBetweenThem()
    {
        string database = await postgres.Server.CreateDatabaseAsync("scaleout");
        await using RedisServer redis = await RedisServer.StartAsync();
        // A is a separate OS process; B runs in this test process.
        await using GatewayProcess a = await GatewayProcess.StartAsync(database, PostgresServer.FreePort(), redis.ConnectionString);
        await a.WaitForRedisAsync();
        await using GatewayHost b = await RedisDeduplicationTests.StartWithRedisAsync(database, redis);
        HttpClient[] instances = [a.Client, b.Client];
        string[] accounts = ["PNscale1", "PNscale2", "PNscale3", "PNscale4"];
        await using StreamClient heard = await LiveEventTests.FollowAsync(b, accounts);

        // One message per account that only A ingests reaches B's follower.
        foreach (string account in accounts)
        {
            await PostAsync(a.Client, account, $"wamid.{account}.onlyA", 1);
            await heard.WaitForAsync(m => m.Any(x => x.Type == "event" && x.Account == account), $"B's follower hears of {account}, ingested on A");
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
        // A 200 means appended to the inbox; the sequencers make it visible moments later.
        await SequencedWait.UntilSequencedAsync(database);
        Assert.Equal(204, await Database.CountAsync(database, "SELECT count(*) FROM messages"));
        Assert.Equal("", await Database.SequencedTwiceAsync(database));
        Assert.Equal(204, await Database.CountAsync(database, "SELECT count(*) FROM account_events WHERE kind = 1"));
        await StreamTests.AssertEveryLoggedEventOnceAsync(database, heard, accounts, after: 0);
        Assert.Equal(204, heard.Events.Count(static e => e.Kind == "message.created"));
    }

    /// <summary>
    /// Three processes share PostgreSQL and Redis. A Meta-like sender spreads every message, delivered twice, over
    /// them round-robin, retrying elsewhere what is not acknowledged; SSE and WebSocket followers of each account sit
    /// on different instances, and cursor readers poll the sync API. One instance is SIGKILLed mid-run: its
    /// followers resume on another instance from their last seq.
    /// </summary>
    [Fact]
    public async Task ThreeProcesses_OneKilledMidRun_EveryMessageOnce_EveryFollowerGetsEveryEventInOrder()
    {
        const int Messages = 600;
        string database = await postgres.Server.CreateDatabaseAsync("scaleout3");
        await using RedisServer redis = await RedisServer.StartAsync();
        // Started together on an empty database: one applies the migrations, the others wait for its advisory lock.
        GatewayProcess[] gateways = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ =>
            GatewayProcess.StartAsync(database, PostgresServer.FreePort(), redis.ConnectionString)));

        try
        {
            foreach (GatewayProcess gateway in gateways)
            {
                await gateway.WaitForRedisAsync();
            }

            Uri[] instances = [.. gateways.Select(static g => g.Address)];
            string[] accounts = [.. Enumerable.Range(1, 6).Select(static i => $"PNthree{i}")];
            string token = GatewayHost.MintToken(accounts);
            var followers = new List<ResumingStreamFollower>();
            for (int i = 0; i < accounts.Length; i++)
            {
                followers.Add(ResumingStreamFollower.Start(instances, i, token, accounts[i], webSocket: false));
                followers.Add(ResumingStreamFollower.Start(instances, i + 1, token, accounts[i], webSocket: true));
            }

            using var sendersDone = new CancellationTokenSource();
            Task<(string Account, List<(long Seq, string Wamid)> Seen)>[] readers =
                [.. accounts.Select(a => CommitOrderTests.FollowAsync(gateways[0].Client, a, sendersDone.Token))];

            using var sender = new RetryingWebhookSender(instances, GatewayHost.Secret);
            int[] deliveries = [.. Enumerable.Range(0, Messages).SelectMany(static i => (int[])[i, i])];
            Task sending = Parallel.ForEachAsync(deliveries, new ParallelOptions { MaxDegreeOfParallelism = 12 }, async (i, cancellation) =>
            {
                string account = accounts[i % accounts.Length];
                byte[] body = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope(account,
                    messages: [WebhookPayloads.TextMessage($"wamid.three.{i}", $"49{i % 7}", 1700000000 + i, "scale")]));
                await sender.DeliverAsync(body, cancellation);
            });

            await Eventually.TrueAsync(() => sender.Acknowledged >= Messages / 2, "half the deliveries acknowledged", 120);
            gateways[2].Kill();
            await sending;
            // Acknowledged means in the inbox; the killed instance's shards are taken over by the survivors.
            await SequencedWait.UntilSequencedAsync(database, 60);
            await sendersDone.CancelAsync();

            Assert.Equal(deliveries.Length, sender.Acknowledged);
            Assert.False(sender.Outcomes.ContainsKey(500), "no delivery was answered 500");
            Assert.True(sender.Outcomes.ContainsKey(RetryingWebhookSender.NoResponse), "deliveries reached the killed instance and were retried");
            output.WriteLine($"attempts {sender.Attempts}: " + string.Join(", ", sender.Outcomes.OrderBy(static o => o.Key).Select(static o => $"{o.Key}×{o.Value}")));
            Assert.Equal(Messages, await Database.CountAsync(database, "SELECT count(*) FROM messages"));
            Assert.Equal("", await Database.SequencedTwiceAsync(database));
            Assert.Equal(Messages, await Database.CountAsync(database, "SELECT count(*) FROM account_events WHERE kind = 1"));

            // Cursor readers polling during the run saw every row once, in increasing seq order.
            var seen = new HashSet<string>();
            foreach ((string account, List<(long Seq, string Wamid)> rows) in await Task.WhenAll(readers))
            {
                Assert.True(rows.Zip(rows.Skip(1)).All(static p => p.First.Seq < p.Second.Seq), $"{account}: seqs not increasing");
                Assert.All(rows, row => Assert.True(seen.Add(row.Wamid), $"{row.Wamid} seen twice"));
            }

            Assert.Equal(Messages, seen.Count);

            // Every follower, across its reconnections, received exactly the account's event log, in order.
            foreach (string account in accounts)
            {
                long[] log = await Database.SeqsAsync(database, account);
                Assert.Equal(log.Length, log.Distinct().Count());
                foreach (ResumingStreamFollower follower in followers.Where(f => f.Account == account))
                {
                    await Eventually.TrueAsync(() => follower.Seqs().Count >= log.Length, $"{follower.Transport} follower of {account} catches up", 60);
                    Assert.Equal(log, follower.Seqs());
                }
            }

            output.WriteLine("follower reconnects: " + string.Join(", ", followers.Select(static f => $"{f.Account}/{f.Transport}={f.Reconnects}")));
            Assert.True(followers.Sum(static f => f.Reconnects) >= 4, "the followers on the killed instance reconnected elsewhere");
            foreach (ResumingStreamFollower follower in followers)
            {
                await follower.DisposeAsync();
            }
        }
        finally
        {
            foreach (GatewayProcess gateway in gateways)
            {
                await gateway.DisposeAsync();
            }
        }
    }

    private static async Task PostAsync(HttpClient instance, string account, string wamid, int i)
    {
        byte[] body = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage(wamid, $"49{i % 5}", 1700000000 + i, "r")]));
        using HttpResponseMessage response = await instance.SendAsync(WebhookRequest.Create(body, GatewayHost.Secret));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }
}
