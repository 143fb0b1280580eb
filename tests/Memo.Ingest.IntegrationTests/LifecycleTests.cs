using System.Collections.Concurrent;
using System.Net;
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

    [Fact]
    public async Task GracefulShutdown_WhileWebhooksInFlight_EveryAcknowledgedOneIsStored()
    {
        string connectionString = await postgres.Server.CreateDatabaseAsync("shutdown");
        GatewayHost gateway = await GatewayHost.StartAsync(connectionString);
        string account = "PNstop" + Guid.NewGuid().ToString("N")[..6];
        var acknowledged = new ConcurrentBag<string>();
        var inFlight = Enumerable.Range(0, 200).Select(async i =>
        {
            string wamid = $"wamid.stop.{i}";
            try
            {
                using HttpResponseMessage response = await gateway.PostWebhookAsync(WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage(wamid, "49", i, "s")]));
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    acknowledged.Add(wamid);
                }
            }
            catch (HttpRequestException)
            {
                // Refused after the listener closed: never acknowledged, so Meta would redeliver it.
            }
        }).ToArray();

        await Task.Delay(20);
        await gateway.App.StopAsync();
        await Task.WhenAll(inFlight);
        await gateway.DisposeAsync();

        long stored = await Database.CountAsync(connectionString, "SELECT count(*) FROM messages WHERE account = $1 AND wamid = ANY($2)", account, acknowledged.ToArray());
        Assert.Equal(acknowledged.Count, stored);
        Assert.NotEmpty(acknowledged);
    }
}
