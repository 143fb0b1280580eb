using Memo.Ingest.Storage;
using Memo.Ingest.TestSupport;
using Npgsql;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

[Collection(PostgresCollection.Name)]
public sealed class LifecycleTests(PostgresFixture postgres)
{
    [Fact]
    public async Task Migrations_FromSeveralProcessesAtOnce_AppliedExactlyOnce()
    {
        string connectionString = await postgres.Server.CreateDatabaseAsync("migrate");
        var sources = Enumerable.Range(0, 6).Select(_ => NpgsqlDataSource.Create(connectionString)).ToArray();
        int[] applied = await Task.WhenAll(sources.Select(static s => MigrationRunner.ApplyAsync(s, CancellationToken.None)));
        Assert.Equal(MigrationRunner.LatestVersion, applied.Sum());
        Assert.Equal(MigrationRunner.LatestVersion, await Database.CountAsync(connectionString, "SELECT count(*) FROM memo_schema_migrations"));
        foreach (NpgsqlDataSource source in sources)
        {
            await source.DisposeAsync();
        }
    }

    /// <summary>
    /// Every request in flight when the stop begins is either answered 200 and stored (sequenced once), or refused
    /// (503, a reset, a refused connection) and not stored: Meta redelivers what was not acknowledged, so a refused
    /// message that was stored anyway would be delivered to our clients twice.
    /// </summary>
    [Fact]
    public async Task GracefulShutdown_WhileWebhooksInFlight_EveryAcknowledgedOneIsStored_AndNoRefusedOne()
    {
        string connectionString = await postgres.Server.CreateDatabaseAsync("shutdown");
        GatewayHost gateway = await GatewayHost.StartAsync(connectionString);
        string account = "PNstop" + Guid.NewGuid().ToString("N")[..6];

        // Shutdown starts once 50 are acknowledged and more are in flight; senders go on until the listener is gone.
        AcknowledgingSenders senders = AcknowledgingSenders.Start(gateway.Client, account, "wamid.stop", senders: 16);
        await senders.WaitForAcknowledgedAsync(50, seconds: 60);
        await gateway.App.StopAsync();
        await senders.StopAsync();
        await gateway.DisposeAsync();

        long stored = await Database.CountAsync(connectionString, "SELECT count(*) FROM messages WHERE account = $1 AND wamid = ANY($2)", account, senders.Acknowledged.ToArray());
        Assert.Equal(senders.Acknowledged.Count, stored);
        string[] refused = [.. senders.Refused.Select(static r => r.Wamid), .. senders.Unanswered];
        Assert.Equal(0, await Database.CountAsync(connectionString, "SELECT count(*) FROM messages WHERE account = $1 AND wamid = ANY($2)", account, refused));
        Assert.All(senders.Refused, static r => Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, r.Status));
        // Nothing else was stored, and nothing twice.
        Assert.Equal(senders.Acknowledged.Count, await Database.CountAsync(connectionString, "SELECT count(*) FROM messages WHERE account = $1", account));
        Assert.Equal("", await Database.SequencedTwiceAsync(connectionString));
    }

    /// <summary>
    /// A sequencer session's shard locks end with the session, not with the process: its connection goes back to the
    /// write pool, where the PostgreSQL session lives on, so a session that ends without releasing them would keep
    /// its shards from every other instance until the pool happened to reuse that connection.
    /// </summary>
    [Fact]
    public async Task AStoppedGateway_HoldsNoShardLocks_SoTheNextOneSequencesAtOnce()
    {
        string connectionString = await postgres.Server.CreateDatabaseAsync("shard_locks_released");
        await using (GatewayHost first = await GatewayHost.StartAsync(connectionString))
        {
            Assert.Equal(System.Net.HttpStatusCode.OK, (await first.PostWebhookAsync(WebhookPayloads.Envelope("PNlocks",
                messages: [WebhookPayloads.TextMessage("wamid.locks.1", "4915559", 1700000000, "first")]))).StatusCode);
            // Every shard, and each sequencer session's member slot.
            Assert.Equal(64 + new Memo.Ingest.Configuration.SequencerOptions().Loops,
                await Database.CountAsync(connectionString, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"));
        }

        Assert.Equal(0, await Database.CountAsync(connectionString, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"));
        await using GatewayHost second = await GatewayHost.StartAsync(connectionString);
        using HttpResponseMessage response = await second.Client.SendAsync(WebhookRequest.Create(System.Text.Encoding.UTF8.GetBytes(
            WebhookPayloads.Envelope("PNlocks", messages: [WebhookPayloads.TextMessage("wamid.locks.2", "4915559", 1700000001, "second")])), GatewayHost.Secret));
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        await SequencedWait.UntilSequencedAsync(connectionString, seconds: 10);
        Assert.Equal(2, await Database.CountAsync(connectionString, "SELECT count(*) FROM messages WHERE account = 'PNlocks'"));
    }
}
