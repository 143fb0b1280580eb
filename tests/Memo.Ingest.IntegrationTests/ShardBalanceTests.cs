using System.Diagnostics;
using System.Net;
using System.Text;
using Memo.Ingest.TestSupport;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>Sequencer sessions share the busy accounts by their load (Sequencing/ShardAssignment.cs).</summary>
[Collection(PostgresCollection.Name)]
public sealed class ShardBalanceTests(PostgresFixture postgres, Xunit.Abstractions.ITestOutputHelper output)
{
    // Accounts whose shards (hashtext & 63: 18, 28, 8, 4) are all even and below 32: the old `shard % 2`, and the even
    // split of idle shards either way round (alternating, or the lowest 32 to a session that joins), put all four on one
    // of two sessions, so only their load can split them.
    private static readonly string[] EvenShardAccounts = ["PNrecv0", "PNrecv1", "PNrecv2", "PNrecv4"];

    // Accounts whose shards (18, 28, 55, 49) are two even and below 32, two odd and above: however the idle shards were
    // first shared (alternating, or the lowest 32 to a session that joins), two are on each session.
    private static readonly string[] SplitShardAccounts = ["PNrecv0", "PNrecv1", "PNrecv5", "PNload006"];

    /// <summary>
    /// With sessions that count as behind as soon as their rounds take a record (the threshold at 1), busy accounts that
    /// all start on one session are spread; with the default threshold, the same load is one that one session keeps up
    /// with, and busy accounts that start on both are gathered on one.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task TwoSessions_BusyAccounts_AreSplitWhileASessionIsBehind_AndGatheredOtherwise(bool behind)
    {
        string database = await postgres.Server.CreateDatabaseAsync("shardbalance");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database,
            "--Memo:Sequencer:Loops=2", "--Memo:Sequencer:RebalanceMilliseconds=200",
            $"--Memo:Sequencer:SplitAboveRecordsPerRound={(behind ? 1 : 500)}");
        string[] accounts = behind ? EvenShardAccounts : SplitShardAccounts;
        Assert.Equal(4, await Database.CountAsync(database,
            "SELECT count(DISTINCT hashtext(a) & 63) FROM unnest($1::text[]) AS a WHERE (hashtext(a) & 63) % 2 = 0", (object)EvenShardAccounts));
        string sessionsHoldingTwo = SessionsHolding(2);
        var joining = Stopwatch.StartNew();
        while (!behind && await Database.CountAsync(database, sessionsHoldingTwo, (object)accounts) != 2)
        {
            Assert.True(joining.Elapsed < TimeSpan.FromSeconds(20), "the two sessions never held two of the accounts each before the load");
            await Task.Delay(100);
        }

        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(40));
        long posted = 0;
        Task[] senders = [.. Enumerable.Range(0, 4).Select(sender => Task.Run(async () =>
        {
            for (int n = 0; !stop.IsCancellationRequested; n++)
            {
                string account = accounts[(sender + n) % accounts.Length];
                var messages = Enumerable.Range(0, 20).Select(m => WebhookPayloads.TextMessage($"wamid.balance.{sender}.{n}.{m}", "4917000", 1700000000 + n, "busy"));
                byte[] body = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope(account, messages: messages));
                using HttpResponseMessage response = await gateway.Client.SendAsync(WebhookRequest.Create(body, GatewayHost.Secret));
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Interlocked.Add(ref posted, 20);
            }
        }))];

        // Spread: held by two sessions, two shards each, while the traffic goes on. Gathered: all four by one session, as
        // seen three times in a row (half a second).
        string sessionsHolding = SessionsHolding(behind ? 2 : 4);
        long expected = behind ? 2 : 1;
        int needed = behind ? 1 : 3;
        var waited = Stopwatch.StartNew();
        int seen = 0;
        while (!stop.IsCancellationRequested && seen < needed)
        {
            seen = await Database.CountAsync(database, sessionsHolding, (object)accounts) == expected ? seen + 1 : 0;
            await Task.Delay(seen == 0 ? 100 : 250);
        }

        TimeSpan settled = waited.Elapsed;
        output.WriteLine($"{(behind ? "split" : "gathered")} after {settled.TotalSeconds:F1} s, {Interlocked.Read(ref posted)} messages posted by then");
        await stop.CancelAsync();
        await Task.WhenAll(senders);
        Assert.True(seen >= needed, behind
            ? $"the four busy shards were not split two and two between the sessions within {settled.TotalSeconds:F1} s"
            : $"the four busy shards were not gathered on one session within {settled.TotalSeconds:F1} s");

        await SequencedWait.UntilSequencedAsync(database);
        Assert.Equal(Interlocked.Read(ref posted), await Database.CountAsync(database, "SELECT count(*) FROM messages"));
        Assert.Equal("", await Database.SequencedTwiceAsync(database));
    }

    /// <summary>
    /// An older version's sequencer session (a member slot in the "MEM2" lock space, holding the even shards as
    /// `shard % 2 == 0` gave them) is still running when this version starts: the new session leads its own group, takes
    /// every shard the older one does not hold, and the older one's shards once it has gone.
    /// </summary>
    [Fact]
    public async Task DuringARollingUpgrade_AnOlderSessionsShards_AreTakenOverWhenItLeaves_AndNothingElseWaitsForIt()
    {
        string database = await postgres.Server.CreateDatabaseAsync("shardupgrade");
        var older = new Npgsql.NpgsqlConnection(database);
        await older.OpenAsync();
        await using (var take = new Npgsql.NpgsqlCommand(
            "SELECT pg_advisory_lock(1296387378, 0), count(pg_advisory_lock(1296387377, s)) FROM generate_series(0, 62, 2) AS s", older))
        {
            await take.ExecuteNonQueryAsync();
        }

        await using GatewayHost gateway = await GatewayHost.StartAsync(database, "--Memo:Sequencer:RebalanceMilliseconds=200");
        await PostAsync(gateway, "PNrecv5", "wamid.upgrade.odd"); // shard 55
        await PostAsync(gateway, "PNrecv0", "wamid.upgrade.even"); // shard 18, held by the older session

        await WaitForAsync(database, "PNrecv5", "a message on a shard nobody else holds is sequenced while the older session runs");
        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.Equal(0, await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE account = 'PNrecv0'"));

        await older.DisposeAsync(); // the older session leaves, and PostgreSQL drops its locks
        await WaitForAsync(database, "PNrecv0", "the older session's shard is taken over once it has gone");
    }

    /// <summary>
    /// The outbox leases accounts with advisory locks in a space of its own ("MEM3", Outbox/OutboxSender.cs). A lease is
    /// no sequencer session: were it counted as one, the leader would give it shards that nobody takes, and their records
    /// would wait as long as the lease is held.
    /// </summary>
    [Fact]
    public async Task AnOutboxLease_IsNoSequencerSession_AndStallsNoShard()
    {
        string database = await postgres.Server.CreateDatabaseAsync("shardlease");
        // Not pooled: a pooled connection would keep its session, and the leases with it, after this test.
        await using var lease = new Npgsql.NpgsqlConnection(new Npgsql.NpgsqlConnectionStringBuilder(database) { Pooling = false }.ConnectionString);
        await lease.OpenAsync();
        await using (var take = new Npgsql.NpgsqlCommand(
            "SELECT pg_advisory_lock(1296387379, hashtext(a)) FROM unnest(ARRAY['PNlease0', 'PNlease1', 'PNlease2']) AS a", lease))
        {
            await take.ExecuteNonQueryAsync();
        }

        await using GatewayHost gateway = await GatewayHost.StartAsync(database, "--Memo:Sequencer:RebalanceMilliseconds=200");
        await Task.Delay(TimeSpan.FromSeconds(1)); // a few rebalances with the leases held
        string[] accounts = [.. Enumerable.Range(0, 16).Select(static i => $"PNlease{i}")];
        foreach (string account in accounts)
        {
            await PostAsync(gateway, account, $"wamid.lease.{account}");
        }

        foreach (string account in accounts)
        {
            await WaitForAsync(database, account, $"{account}'s message is sequenced while outbox leases are held");
        }

        Assert.Equal(0, await Database.CountAsync(database,
            "SELECT count(*) FROM sequencer_shards WHERE member_slot NOT IN (SELECT objid::int " + MemberLocks + ")"));
    }

    /// <summary>
    /// With rebalances ten minutes apart, only the announcements can move shards in this test: the instance that held
    /// every shard stops and says so through Redis; the other instance's first session, now the leader, gives the
    /// orphaned shards to its two sessions at once, and the second session takes its half as soon as the leader has
    /// written it (a local announcement: an instance ignores its own on Redis).
    /// </summary>
    [Fact]
    public async Task AnInstanceThatStops_ItsShardsAreTakenOverAtOnce_NotAtTheNextRebalance()
    {
        string database = await postgres.Server.CreateDatabaseAsync("shardhandoff");
        await using RedisServer redis = await RedisServer.StartAsync();
        const string Rarely = "--Memo:Sequencer:RebalanceMilliseconds=600000";
        GatewayHost first = await RedisDeduplicationTests.StartWithRedisAsync(database, redis, Rarely, "--Memo:Sequencer:Loops=1");
        try
        {
            await Eventually.TrueAsync(async () => await Database.CountAsync(database, ShardHolders) == 1 && await Database.CountAsync(database, HeldShards) == 64,
                "the first instance's session holds every shard", seconds: 20);
            await using GatewayHost second = await RedisDeduplicationTests.StartWithRedisAsync(database, redis, Rarely, "--Memo:Sequencer:Loops=2");
            await Eventually.TrueAsync(async () => await Database.CountAsync(database, Members) == 3, "the second instance's two sessions are members", seconds: 20);
            await Task.Delay(TimeSpan.FromSeconds(1));
            Assert.Equal(1, await Database.CountAsync(database, ShardHolders));

            await first.DisposeAsync();
            var handoff = Stopwatch.StartNew();
            await Eventually.TrueAsync(async () => await Database.CountAsync(database, ShardHolders) == 2 && await Database.CountAsync(database, HeldShards) == 64,
                "the second instance's two sessions hold every shard between them", seconds: 20);
            output.WriteLine($"taken over {handoff.ElapsedMilliseconds} ms after the first instance had stopped");
            await PostAsync(second, "PNrecv0", "wamid.handoff.even");
            await PostAsync(second, "PNrecv5", "wamid.handoff.odd");
            await WaitForAsync(database, "PNrecv0", "a message of a shard taken over is sequenced");
            await WaitForAsync(database, "PNrecv5", "a message of a shard taken over is sequenced");
        }
        finally
        {
            await first.DisposeAsync();
        }
    }

    private const string ShardLocks = """
        FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND classid = 1296387377 AND objsubid = 2
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """;

    /// <summary>How many sequencer sessions hold shards.</summary>
    internal const string ShardHolders = "SELECT count(DISTINCT pid) " + ShardLocks;

    internal const string HeldShards = "SELECT count(DISTINCT objid) " + ShardLocks;

    private const string MemberLocks = """
        FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND classid = 1296387380 AND objsubid = 2
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """;

    private const string Members = "SELECT count(*) " + MemberLocks;

    /// <summary>How many sessions hold exactly <paramref name="shards"/> of the shards of the accounts in $1.</summary>
    private static string SessionsHolding(int shards) => $"""
        SELECT count(*) FROM (
            SELECT pid FROM pg_locks
            WHERE locktype = 'advisory' AND granted AND classid = 1296387377 AND objsubid = 2
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND objid = ANY (ARRAY(SELECT hashtext(a) & 63 FROM unnest($1::text[]) AS a)::oid[])
            GROUP BY pid HAVING count(*) = {shards}) AS s
        """;

    private static async Task PostAsync(GatewayHost gateway, string account, string wamid)
    {
        byte[] body = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage(wamid, "4917000", 1700000000, "upgrade")]));
        using HttpResponseMessage response = await gateway.Client.SendAsync(WebhookRequest.Create(body, GatewayHost.Secret));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private static async Task WaitForAsync(string database, string account, string what)
    {
        var waited = Stopwatch.StartNew();
        while (await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE account = $1", account) == 0)
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(15), what);
            await Task.Delay(50);
        }
    }
}
