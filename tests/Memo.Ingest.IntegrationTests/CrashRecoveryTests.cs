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
}
