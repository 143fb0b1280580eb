using System.Net;
using System.Text.Json;
using Memo.Ingest.TestSupport;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// SIGKILL of the gateway at every point of a send: before the call, during it, after Meta accepted (answer lost),
/// after the answer arrived but before it was committed. No reply is lost, none is sent twice, and the ones whose fate
/// is open end <c>unknown</c>, visibly, until Meta's status webhooks settle them.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class OutboxCrashTests(PostgresFixture postgres)
{
    private const string Account = "PNcrashsend";

    [Fact]
    public async Task Sigkill_AtEveryPointOfASend_LosesNoReply_SendsNoneTwice_AndLeavesTheOpenOnesUnknown()
    {
        string connectionString = await postgres.Server.CreateDatabaseAsync("outbox_crash");
        int port = PostgresServer.FreePort();
        await using FakeGraphApi graph = await FakeGraphApi.StartAsync();
        Dictionary<string, string?> Environment(string? fault) => new()
        {
            ["Memo__Outbox__GraphBaseUrl"] = graph.Address.ToString(),
            ["Memo__Outbox__AccessToken"] = "test-token",
            ["Memo__Outbox__PollMilliseconds"] = "50",
            ["Memo__Outbox__RequestTimeoutSeconds"] = "600",
            ["Memo__Testing__ArmedFault"] = fault,
        };

        // 1. Killed after the reply was marked sending, before the call: Meta never saw it.
        long beforeCall = await KillWhenAsync(connectionString, port, Environment("outbox.before_send"), "15550000001",
            id => StateIsAsync(connectionString, id, "sending"));
        // 2. Killed after Meta answered, before the answer was committed.
        long beforeCommit = await KillWhenAsync(connectionString, port, Environment("outbox.before_commit"), "15550000002",
            _ => Task.FromResult(graph.Delivered.Any(static s => s.To == "15550000002")));
        // 3. Killed during the call (Meta has not taken it); 4. after Meta took it, with its answer still on the way.
        graph.Script("15550000003", FakeAnswer.Hang);
        long duringCall = await KillWhenAsync(connectionString, port, Environment(null), "15550000003",
            _ => Task.FromResult(graph.Sends.Any(static s => s.To == "15550000003")));
        graph.Script("15550000004", FakeAnswer.AcceptThenHang);
        long acceptedUnanswered = await KillWhenAsync(connectionString, port, Environment(null), "15550000004",
            _ => Task.FromResult(graph.Sends.Any(static s => s.To == "15550000004")));

        await using GatewayProcess gateway = await GatewayProcess.StartAsync(connectionString, port, environment: Environment(null));
        long[] cut = [beforeCall, beforeCommit, duringCall, acceptedUnanswered];
        foreach (long id in cut)
        {
            await Eventually.TrueAsync(() => StateIsAsync(connectionString, id, "unknown"), $"reply {id} is unknown");
            await Eventually.TrueAsync(async () => await StatusAsync(gateway, id) == "unknown", $"reply {id} shows unknown in the sync API");
        }

        // A new reply goes out as usual; none of the cut ones is sent again.
        long fresh = await ReplyClient.QueueAsync(gateway.Client, Account, ReplyClient.Text("15550000005", "after the crashes"));
        await Eventually.TrueAsync(async () => await StatusAsync(gateway, fresh) == "accepted", "a new reply is accepted");
        await Task.Delay(1000);
        Assert.DoesNotContain(graph.Sends, static s => s.To == "15550000001");
        Assert.Single(graph.Sends, static s => s.To == "15550000002");
        Assert.Single(graph.Sends, static s => s.To == "15550000003");
        Assert.Single(graph.Sends, static s => s.To == "15550000004");
        Assert.Single(graph.Sends, static s => s.To == "15550000005");
        Assert.Equal(5, await Database.CountAsync(connectionString, "SELECT count(*) FROM outbox"));

        // Meta's status webhooks carry the key back: the two Meta took are settled, with their wamids.
        foreach ((long id, string to) in new[] { (beforeCommit, "15550000002"), (acceptedUnanswered, "15550000004") })
        {
            string wamid = graph.Delivered.Single(s => s.To == to).Wamid!;
            using HttpResponseMessage status = await gateway.Client.SendAsync(WebhookRequest.Create(
                System.Text.Encoding.UTF8.GetBytes(ReplyClient.Status(Account, id, wamid, "sent", 1700000000, to)), GatewayHost.Secret));
            Assert.Equal(HttpStatusCode.OK, status.StatusCode);
            await Eventually.TrueAsync(async () => await StatusAsync(gateway, id) == "sent", $"reply {id} is settled by its status");
            await Eventually.TrueAsync(() => StateIsAsync(connectionString, id, "accepted"), $"outbox row {id} is reconciled");
            Assert.Equal(1, await Database.CountAsync(connectionString, "SELECT count(*) FROM outbox WHERE id = $1 AND wamid = $2", id, wamid));
        }

        Assert.Equal(2, await Database.CountAsync(connectionString, "SELECT count(*) FROM outbox WHERE state = 'unknown'"));
    }

    /// <summary>Starts the gateway, queues a reply to <paramref name="to"/>, SIGKILLs the process once <paramref name="until"/> holds.</summary>
    private static async Task<long> KillWhenAsync(string connectionString, int port, Dictionary<string, string?> environment, string to,
        Func<long, Task<bool>> until)
    {
        await using GatewayProcess gateway = await GatewayProcess.StartAsync(connectionString, port, environment: environment);
        long id = await ReplyClient.QueueAsync(gateway.Client, Account, ReplyClient.Text(to, "reply to " + to));
        await Eventually.TrueAsync(() => until(id), $"reply {id} reaches the point to kill at");
        gateway.Kill();
        return id;
    }

    private static async Task<bool> StateIsAsync(string connectionString, long id, string state) =>
        await Database.CountAsync(connectionString, "SELECT count(*) FROM outbox WHERE id = $1 AND state = $2", id, state) == 1;

    private static async Task<string?> StatusAsync(GatewayProcess gateway, long id) =>
        (await SyncClient.GetAllAsync(gateway.Client, Account, "messages"))
            .Where(m => m.GetProperty("wamid").GetString() == $"memo.outbox.{id}")
            .Select(static m => m.GetProperty("status").ValueKind == JsonValueKind.Null ? null : m.GetProperty("status").GetString())
            .FirstOrDefault();
}
