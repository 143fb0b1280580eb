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

        // Hold the account's row lock from outside: the only writer blocks inside its transaction, the queue fills.
        await using var blocker = new NpgsqlConnection(connectionString);
        await blocker.OpenAsync();
        await using NpgsqlTransaction transaction = await blocker.BeginTransactionAsync();
        await using (var lockRow = new NpgsqlCommand("SELECT 1 FROM accounts WHERE phone_number_id = $1 FOR UPDATE", blocker, transaction))
        {
            lockRow.Parameters.Add(new NpgsqlParameter { Value = account });
            await lockRow.ExecuteNonQueryAsync();
        }

        var posts = Enumerable.Range(0, 5).Select(i => (Wamid: $"wamid.q{i}", Response: gateway.PostWebhookAsync(
            WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage($"wamid.q{i}", "49", 10 + i, "q")])))).ToArray();

        // At most one webhook is in the blocked writer and one in the queue: the rest time out with 503 while the
        // lock is still held, so wait for three answers before releasing it.
        var waiting = posts.Select(static p => (Task)p.Response).ToList();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (posts.Count(static p => p.Response.IsCompleted) < 3)
        {
            await Task.WhenAny(waiting.Where(static t => !t.IsCompleted)).WaitAsync(deadline.Token);
        }

        using (HttpResponseMessage ready = await gateway.Client.GetAsync("/readyz"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        }

        await transaction.RollbackAsync();
        var answered = new List<(string Wamid, HttpResponseMessage Response)>();
        foreach (var (wamid, response) in posts)
        {
            answered.Add((wamid, await response));
        }

        var rejected = answered.Where(static a => a.Response.StatusCode == HttpStatusCode.ServiceUnavailable).ToList();
        Assert.True(rejected.Count >= 3, $"{rejected.Count} answered 503");
        Assert.All(rejected, static a => Assert.Equal(TimeSpan.FromSeconds(2), a.Response.Headers.RetryAfter!.Delta));
        Assert.All(answered.Except(rejected), static a => Assert.Equal(HttpStatusCode.OK, a.Response.StatusCode));

        var stored = (await SyncClient.GetAllAsync(gateway.Client, account, "messages")).Select(static m => m.GetProperty("wamid").GetString()).ToHashSet();
        Assert.True(answered.Except(rejected).All(a => stored.Contains(a.Wamid)));
        Assert.True(rejected.All(a => !stored.Contains(a.Wamid)));
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
