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
        var acknowledged = new ConcurrentBag<string>();
        var sent = 0;

        await using (GatewayProcess gateway = await GatewayProcess.StartAsync(connectionString, port))
        {
            using var stop = new CancellationTokenSource();
            var senders = Enumerable.Range(0, 8).Select(sender => Task.Run(async () =>
            {
                for (int i = 0; !stop.IsCancellationRequested; i++)
                {
                    string wamid = $"wamid.crash.{sender}.{i}";
                    byte[] body = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage(wamid, "49", 1700000000 + i, "c")]));
                    Interlocked.Increment(ref sent);
                    try
                    {
                        using HttpResponseMessage response = await gateway.Client.SendAsync(WebhookRequest.Create(body, GatewayHost.Secret));
                        if (response.StatusCode == HttpStatusCode.OK)
                        {
                            acknowledged.Add(wamid);
                        }
                    }
                    catch (HttpRequestException)
                    {
                        return; // the process is gone
                    }
                }
            })).ToArray();

            // Kill once a good number of webhooks has been acknowledged, with more in flight.
            var deadline = System.Diagnostics.Stopwatch.StartNew();
            while (acknowledged.Count < 300)
            {
                Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(120), $"only {acknowledged.Count} acknowledged");
                await Task.Delay(10);
            }

            gateway.Kill();
            stop.Cancel();
            await Task.WhenAll(senders);
        }

        await using GatewayProcess restarted = await GatewayProcess.StartAsync(connectionString, port);
        List<System.Text.Json.JsonElement> stored = await SyncClient.GetAllAsync(restarted.Client, account, "messages");
        var storedWamids = stored.Select(static s => s.GetProperty("wamid").GetString()!).ToList();
        Assert.Equal(storedWamids.Count, storedWamids.Distinct().Count());
        Assert.Empty(acknowledged.Except(storedWamids));
        Assert.True(acknowledged.Count >= 300 && sent > acknowledged.Count, $"sent {sent}, acknowledged {acknowledged.Count}, stored {storedWamids.Count}");
    }
}
