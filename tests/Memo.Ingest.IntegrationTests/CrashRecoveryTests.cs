using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Memo.Ingest.TestSupport;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>A 200 means committed: SIGKILL right after acknowledgements must not lose any of them.</summary>
[Collection(PostgresCollection.Name)]
public sealed class CrashRecoveryTests(PostgresFixture postgres)
{
    [Fact]
    public async Task Sigkill_DuringLoad_EveryAcknowledgedMessageSurvivesExactlyOnce()
    {
        string connectionString = await postgres.Server.CreateDatabaseAsync("crash");
        int port = PostgresServer.FreePort();
        string account = "PNcrash" + Guid.NewGuid().ToString("N")[..6];
        AcknowledgingSenders senders;
        await using (GatewayProcess gateway = await GatewayProcess.StartAsync(connectionString, port))
        {
            // Kill once a good number of webhooks has been acknowledged, with more in flight.
            senders = AcknowledgingSenders.Start(gateway.Client, account, "wamid.crash", senders: 8);
            await senders.WaitForAcknowledgedAsync(300);
            gateway.Kill();
            await senders.StopAsync();
        }

        await using GatewayProcess restarted = await GatewayProcess.StartAsync(connectionString, port);
        List<System.Text.Json.JsonElement> stored = await SyncClient.GetAllAsync(restarted.Client, account, "messages");
        var storedWamids = stored.Select(static s => s.GetProperty("wamid").GetString()!).ToList();
        Assert.Equal(storedWamids.Count, storedWamids.Distinct().Count());
        Assert.Empty(senders.Acknowledged.Except(storedWamids));
        Assert.True(senders.Acknowledged.Count >= 300 && senders.Sent > senders.Acknowledged.Count,
            $"sent {senders.Sent}, acknowledged {senders.Acknowledged.Count}, stored {storedWamids.Count}");
    }

    /// <summary>
    /// A history backfill is the one delivery that cannot be asked for again: SIGKILL in the middle of one loses no
    /// acknowledged chunk (each is stored whole after the restart, before anything is sent again), and Meta's
    /// redelivery of every chunk afterwards stores each message exactly once.
    /// </summary>
    [Fact]
    public async Task Sigkill_DuringABackfill_EveryAcknowledgedChunkSurvives_AndRedeliveryStoresEachMessageOnce()
    {
        string connectionString = await postgres.Server.CreateDatabaseAsync("crash_backfill");
        int port = PostgresServer.FreePort();
        const string account = "PNcrashbackfill";
        const int perChunk = 200;
        var acknowledged = new ConcurrentBag<int>();
        int next = -1;
        await using (GatewayProcess gateway = await GatewayProcess.StartAsync(connectionString, port))
        {
            using var stop = new CancellationTokenSource();
            Task[] senders = [.. Enumerable.Range(0, 3).Select(_ => Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    int chunk = Interlocked.Increment(ref next);
                    try
                    {
                        using HttpResponseMessage response = await gateway.Client.SendAsync(WebhookRequest.Create(Encoding.UTF8.GetBytes(Chunk(account, chunk, perChunk)), GatewayHost.Secret));
                        if (response.StatusCode == HttpStatusCode.OK)
                        {
                            acknowledged.Add(chunk);
                        }
                    }
                    catch (HttpRequestException)
                    {
                        return; // the gateway is gone
                    }
                }
            }))];
            await Eventually.TrueAsync(() => acknowledged.Count >= 15, "15 chunks acknowledged");
            gateway.Kill();
            await stop.CancelAsync();
            await Task.WhenAll(senders);
        }

        await using GatewayProcess restarted = await GatewayProcess.StartAsync(connectionString, port);
        await SequencedWait.UntilSequencedAsync(connectionString, 120);
        foreach (int chunk in acknowledged)
        {
            Assert.Equal(perChunk, await Database.CountAsync(connectionString,
                "SELECT count(*) FROM messages WHERE account = $1 AND wamid LIKE $2", account, $"wamid.crash.bf.{chunk}.%"));
        }

        // Meta sends every chunk again (those it saw fail, and the acknowledged ones too, for good measure).
        int sent = Volatile.Read(ref next) + 1;
        for (int chunk = 0; chunk < sent; chunk++)
        {
            using HttpResponseMessage response = await restarted.Client.SendAsync(WebhookRequest.Create(Encoding.UTF8.GetBytes(Chunk(account, chunk, perChunk)), GatewayHost.Secret));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        await SequencedWait.UntilSequencedAsync(connectionString, 120);
        Assert.Equal(sent * perChunk, await Database.CountAsync(connectionString, "SELECT count(*) FROM messages WHERE account = $1", account));
        Assert.Equal("", await Database.SequencedTwiceAsync(connectionString));
        Assert.Equal(await Database.CountAsync(connectionString, "SELECT count(*) FROM account_events WHERE account = $1", account),
            await Database.CountAsync(connectionString, "SELECT max(seq) FROM account_events WHERE account = $1", account));
    }

    /// <summary>
    /// PostgreSQL crashes (immediate stop) in the middle of a backfill and comes back: chunks posted meanwhile are
    /// refused (503) and sent again, as Meta does, and in the end every chunk is stored, each message exactly once.
    /// </summary>
    [Fact]
    public async Task PostgresCrash_DuringABackfill_RefusedChunksGoThroughOnRetry_AndEachMessageIsStoredOnce()
    {
        await using PostgresServer server = await PostgresServer.StartAsync();
        string connectionString = await server.CreateDatabaseAsync("crash_pg_backfill");
        await using GatewayHost gateway = await GatewayHost.StartAsync(connectionString);
        const string account = "PNpgcrashbackfill";
        const int chunks = 40;
        const int perChunk = 200;
        var acknowledged = new ConcurrentDictionary<int, bool>();
        int next = -1;
        int refused = 0;
        Task[] senders = [.. Enumerable.Range(0, 3).Select(_ => Task.Run(async () =>
        {
            int chunk;
            while ((chunk = Interlocked.Increment(ref next)) < chunks)
            {
                byte[] body = Encoding.UTF8.GetBytes(Chunk(account, chunk, perChunk));
                while (true)
                {
                    using HttpResponseMessage response = await gateway.Client.SendAsync(WebhookRequest.Create(body, GatewayHost.Secret));
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        acknowledged[chunk] = true;
                        break;
                    }

                    Interlocked.Increment(ref refused);
                    await Task.Delay(200);
                }

                await Task.Delay(50); // a backfill that is still going on when PostgreSQL goes down
            }
        }))];

        await Eventually.TrueAsync(() => acknowledged.Count >= 5, "5 chunks acknowledged");
        await server.CrashAsync();
        await Task.Delay(TimeSpan.FromSeconds(2));
        await server.StartAgainAsync();
        await Task.WhenAll(senders).WaitAsync(TimeSpan.FromSeconds(120));

        await SequencedWait.UntilSequencedAsync(connectionString, 120);
        Assert.True(refused > 0, "no chunk was ever refused: the crash came too late to test anything");
        Assert.Equal(chunks, acknowledged.Count);
        Assert.Equal(chunks * perChunk, await Database.CountAsync(connectionString, "SELECT count(*) FROM messages WHERE account = $1", account));
        Assert.Equal("", await Database.SequencedTwiceAsync(connectionString));
    }

    private static string Chunk(string account, int chunk, int messages) =>
        CoexistencePayloads.HistoryChunk(account, 1, chunk, Math.Min(99, chunk),
        [
            CoexistencePayloads.Thread("4915550001", [.. Enumerable.Range(0, messages).Select(i =>
                CoexistencePayloads.HistoryText($"wamid.crash.bf.{chunk}.{i}", "4915550001", 1690000000 + (chunk * messages) + i, "old", "READ"))]),
        ]);
}
