using System.Collections.Concurrent;
using System.Net;
using Memo.Ingest.Events;
using Memo.Ingest.Ingest;
using Memo.Ingest.Testing;
using Memo.Ingest.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// Committed events reach the listeners of every instance, per account in seq order with no gap and no repeat,
/// even when Redis pub/sub loses them: the bus then reads them from the account_events log.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class EventBusTests(PostgresFixture postgres)
{
    [Fact]
    public async Task EventsIngestedOnOneInstance_ReachTheListenersOfAnother_InSeqOrder()
    {
        string database = await postgres.Server.CreateDatabaseAsync("bus");
        await using RedisServer redis = await RedisServer.StartAsync();
        await using GatewayHost a = await RedisDeduplicationTests.StartWithRedisAsync(database, redis);
        await using GatewayHost b = await RedisDeduplicationTests.StartWithRedisAsync(database, redis);
        var heard = new Listener(b);
        string[] accounts = ["PNbus1", "PNbus2", "PNbus3"];
        await PrimeAsync(a, heard, accounts);

        await SendConcurrentlyAsync(a, accounts, messagesPerAccount: 40);

        await heard.AssertEverySeqOfTheLogAsync(database, accounts);
    }

    [Fact]
    public async Task EventsPublishedWhileRedisWasDown_AreCaughtUpFromPostgresql()
    {
        string database = await postgres.Server.CreateDatabaseAsync("bus_outage");
        await using RedisServer redis = await RedisServer.StartAsync();
        await using GatewayHost a = await RedisDeduplicationTests.StartWithRedisAsync(database, redis);
        await using GatewayHost b = await RedisDeduplicationTests.StartWithRedisAsync(database, redis);
        var heard = new Listener(b);
        using var backfilled = new CounterRecorder(b.App.Services, "memo.bus.events.backfilled", "none");
        string[] accounts = ["PNbusdown1", "PNbusdown2"];
        await PrimeAsync(a, heard, accounts);

        // With Redis down, A commits but cannot publish: B hears of these only through its catch-up.
        await redis.StopAsync();
        await SendConcurrentlyAsync(a, accounts, messagesPerAccount: 10, tag: "down");
        await redis.StartAgainAsync();

        // Nothing new is published: only the catch-up that follows B's new subscription can deliver them.
        await heard.AssertEverySeqOfTheLogAsync(database, accounts);
        Assert.True(backfilled[""] >= 2 * 10 * 3, $"only {backfilled[""]} events came from the log");

        await SendConcurrentlyAsync(a, accounts, messagesPerAccount: 10, tag: "up");
        await heard.AssertEverySeqOfTheLogAsync(database, accounts);
    }

    [Fact]
    public async Task AnEventPastTheNextSeq_MakesTheBusReadTheGapFromTheLogFirst()
    {
        string database = await postgres.Server.CreateDatabaseAsync("bus_gap");
        await using RedisServer redis = await RedisServer.StartAsync();
        await using GatewayHost publishing = await RedisDeduplicationTests.StartWithRedisAsync(database, redis);
        // The listening instance runs no sequencer, so every event reaches it through Redis.
        await using GatewayHost listening = await RedisDeduplicationTests.StartWithRedisAsync(database, redis, "--Memo:Sequencer:Loops=0");
        var heard = new Listener(listening);
        string[] account = ["PNgap"];
        await PrimeAsync(publishing, heard, account);

        // The events of the next 5 rounds never reach the channel, as if their PUBLISH were lost.
        publishing.App.Services.GetRequiredService<FaultInjector>().Arm(FaultInjector.LosePublish, times: 5);
        foreach (int i in Enumerable.Range(0, 5))
        {
            await SendConcurrentlyAsync(publishing, account, messagesPerAccount: 1, tag: $"lost{i}");
        }

        await SendConcurrentlyAsync(publishing, account, messagesPerAccount: 1, tag: "loud");

        await heard.AssertEverySeqOfTheLogAsync(database, account);
    }

    [Fact]
    public async Task WithoutRedis_ListenersOfTheSameInstanceStillHearEverything()
    {
        string database = await postgres.Server.CreateDatabaseAsync("bus_local");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database);
        var heard = new Listener(gateway);
        string[] accounts = ["PNlocal1", "PNlocal2"];
        await PrimeAsync(gateway, heard, accounts);

        await SendConcurrentlyAsync(gateway, accounts, messagesPerAccount: 20);

        await heard.AssertEverySeqOfTheLogAsync(database, accounts);
    }

    /// <summary>
    /// The bus follows an account from the first event it sees of it; one message per account, heard before the
    /// test proper starts, makes that seq 1 to 3.
    /// </summary>
    internal static async Task PrimeAsync(GatewayHost gateway, Listener heard, string[] accounts)
    {
        foreach (string account in accounts)
        {
            string body = WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage($"wamid.{account}.prime", "49", 1700000000, "p")]);
            Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(body)).StatusCode);
            await Eventually.TrueAsync(() => heard.Has(account), $"the listener hears of {account}");
        }
    }

    internal static async Task SendConcurrentlyAsync(GatewayHost gateway, string[] accounts, int messagesPerAccount, string tag = "m")
    {
        await Parallel.ForEachAsync(
            accounts.SelectMany(account => Enumerable.Range(0, messagesPerAccount).Select(i => (account, i))),
            new ParallelOptions { MaxDegreeOfParallelism = 8 },
            async (item, _) =>
            {
                (string account, int i) = item;
                string wamid = $"wamid.{account}.{tag}.{i}";
                string body = WebhookPayloads.Envelope(account,
                    contacts: [WebhookPayloads.Contact($"49{i % 3}", $"Name {tag} {i}")],
                    messages: [WebhookPayloads.TextMessage(wamid, $"49{i % 3}", 1700000000 + i, "b")],
                    statuses: [WebhookPayloads.Status($"wamid.{account}.out.{i}", "read", 1700000000 + i, "49")]);
                using HttpResponseMessage response = await gateway.PostWebhookAsync(body);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            });
    }

    /// <summary>Everything one instance's bus delivers, in delivery order.</summary>
    internal sealed class Listener
    {
        private readonly ConcurrentQueue<CommittedEvent> _events = new();

        public Listener(GatewayHost gateway)
        {
            gateway.App.Services.GetRequiredService<EventBus>().Subscribe(_events.Enqueue);
        }

        public IReadOnlyCollection<CommittedEvent> Events => _events;

        public bool Has(string account) => _events.Any(e => e.Account == account);

        /// <summary>
        /// Waits until the listener heard as many events as the log holds, then checks they are exactly the log's,
        /// in seq order per account, from the first one heard.
        /// </summary>
        public async Task AssertEverySeqOfTheLogAsync(string database, string[] accounts)
        {
            foreach (string account in accounts)
            {
                List<(long Seq, EventKind Kind, string Key)> log = await ReadLogAsync(database, account);
                long first = _events.First(e => e.Account == account).Seq;
                List<(long, EventKind, string)> expected = log.Where(e => e.Seq >= first).ToList();
                await Eventually.TrueAsync(() => _events.Count(e => e.Account == account) >= expected.Count,
                    $"{account}: {expected.Count} events heard");
                List<(long, EventKind, string)> delivered = _events.Where(e => e.Account == account).Select(static e => (e.Seq, e.Kind, e.Key)).ToList();
                Assert.Equal(expected, delivered);
                Assert.True(first <= 3, $"{account}: following started at seq {first}");
            }
        }

        private static async Task<List<(long, EventKind, string)>> ReadLogAsync(string database, string account)
        {
            await using var connection = new NpgsqlConnection(database);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT seq, kind, key FROM account_events WHERE account = $1 ORDER BY seq", connection);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = account });
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
            var log = new List<(long, EventKind, string)>();
            while (await reader.ReadAsync())
            {
                log.Add((reader.GetInt64(0), (EventKind)reader.GetInt16(1), reader.GetString(2)));
            }

            return log;
        }
    }
}
