using System.Net;
using Memo.Ingest.TestSupport;
using Npgsql;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

[Collection(PostgresCollection.Name)]
public sealed class BackpressureTests(PostgresFixture postgres)
{
    [Fact]
    public async Task Post_QueueFullWhileWriterBlocked_503WithRetryAfter_AcceptedOnesCommitAfterwards()
    {
        string connectionString = await postgres.Server.CreateDatabaseAsync("backpressure");
        await using GatewayHost gateway = await GatewayHost.StartAsync(connectionString,
            "--Memo:Ingest:Writers=1", "--Memo:Ingest:ChannelCapacity=1", "--Memo:Ingest:EnqueueTimeoutMilliseconds=200",
            "--Memo:Ingest:BatchLingerMilliseconds=0");
        const string account = "PNfull";
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage("wamid.first", "49", 1, "a")]))).StatusCode);

        // Hold a lock on the inbox from outside that its appends must wait for: the only writer blocks inside its COPY,
        // the queue fills.
        await using var blocker = new NpgsqlConnection(connectionString);
        await blocker.OpenAsync();
        await using NpgsqlTransaction transaction = await blocker.BeginTransactionAsync();
        await using (var lockInbox = new NpgsqlCommand("LOCK TABLE inbox IN SHARE MODE", blocker, transaction))
        {
            await lockInbox.ExecuteNonQueryAsync();
        }

        // Step by step, so batching cannot blur it: one webhook blocks the only writer, one fills the queue (capacity 1),
        // and only then do the remaining ones arrive, which must time out with 503.
        Task<HttpResponseMessage> Post(string wamid) =>
            gateway.PostWebhookAsync(WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage(wamid, "49", 10, "q")]));
        Task<HttpResponseMessage> inWriter = Post("wamid.in-writer");
        await Eventually.TrueAsync(async () => await Database.CountAsync(connectionString,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'") > 0,
            "the writer waits for the lock");
        Task<HttpResponseMessage> inQueue = Post("wamid.in-queue");
        await Eventually.TrueAsync(async () =>
        {
            using HttpResponseMessage ready = await gateway.Client.GetAsync("/readyz");
            return ready.StatusCode == HttpStatusCode.ServiceUnavailable;
        }, "the queue is full");

        HttpResponseMessage[] refused = await Task.WhenAll(Post("wamid.refused-1"), Post("wamid.refused-2"));
        Assert.All(refused, static r => Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode));
        Assert.All(refused, static r => Assert.Equal(TimeSpan.FromSeconds(2), r.Headers.RetryAfter!.Delta));

        await transaction.RollbackAsync();
        Assert.Equal(HttpStatusCode.OK, (await inWriter).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await inQueue).StatusCode);

        var stored = (await SyncClient.GetAllAsync(gateway.Client, account, "messages")).Select(static m => m.GetProperty("wamid").GetString()).ToHashSet();
        Assert.Equal(["wamid.first", "wamid.in-queue", "wamid.in-writer"], stored.Order());
    }

    [Fact]
    public async Task Post_DatabaseUnreachable_503WithRetryAfterAndNotReady_ButAlive()
    {
        int closedPort = PostgresServer.FreePort();
        await using GatewayHost gateway = await GatewayHost.StartAsync($"Host=127.0.0.1;Port={closedPort};Username=postgres;Timeout=2");
        using HttpResponseMessage response = await gateway.PostWebhookAsync(WebhookPayloads.Envelope("PNdown", messages: [WebhookPayloads.TextMessage("wamid.d", "49", 1, "d")]));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await gateway.Client.GetAsync("/readyz")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await gateway.Client.GetAsync("/healthz")).StatusCode);
    }
}
