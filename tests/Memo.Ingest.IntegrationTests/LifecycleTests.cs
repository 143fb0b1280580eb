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
        var enoughAcknowledged = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var stopSending = new CancellationTokenSource();

        // Senders post until the listener is gone; shutdown starts once 50 are acknowledged and more are in flight.
        var senders = Enumerable.Range(0, 16).Select(sender => Task.Run(async () =>
        {
            for (int i = 0; !stopSending.IsCancellationRequested; i++)
            {
                string wamid = $"wamid.stop.{sender}.{i}";
                try
                {
                    using HttpResponseMessage response = await gateway.PostWebhookAsync(WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage(wamid, "49", i, "s")]));
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        acknowledged.Add(wamid);
                        if (acknowledged.Count >= 50)
                        {
                            enoughAcknowledged.TrySetResult();
                        }
                    }
                }
                catch (HttpRequestException)
                {
                    return; // refused after the listener closed: never acknowledged, so Meta would redeliver it
                }
            }
        })).ToArray();

        await enoughAcknowledged.Task.WaitAsync(TimeSpan.FromSeconds(60));
        await gateway.App.StopAsync();
        stopSending.Cancel();
        await Task.WhenAll(senders);
        await gateway.DisposeAsync();

        long stored = await Database.CountAsync(connectionString, "SELECT count(*) FROM messages WHERE account = $1 AND wamid = ANY($2)", account, acknowledged.ToArray());
        Assert.Equal(acknowledged.Count, stored);
    }
}
