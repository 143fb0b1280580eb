using System.Net;
using System.Text;
using Memo.Ingest.TestSupport;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// The Native-AOT binary itself, end to end (not dotnet run): what runs in production must be what is tested.
/// scripts/test.sh publishes it first (deploy/publish-aot.sh) and passes its path in MEMO_NATIVE_BINARY.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class NativeBinarySmokeTests(PostgresFixture postgres)
{
    [Fact]
    public async Task NativeBinary_HandshakeWebhooksSyncStreamMetricsAndGracefulShutdown()
    {
        string binary = FindNativeBinary();
        string database = await postgres.Server.CreateDatabaseAsync("native");
        await using RedisServer redis = await RedisServer.StartAsync();
        await using GatewayProcess gateway = await GatewayProcess.StartAsync(database, PostgresServer.FreePort(), redis.ConnectionString, nativeBinary: binary);
        await gateway.WaitForRedisAsync();
        const string account = "PNnative";

        // Handshake.
        Assert.Equal("42", await gateway.Client.GetStringAsync($"/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={GatewayHost.VerifyToken}&hub.challenge=42"));

        // A live client from seq 0, then signed webhooks of every message type, a status, a duplicate and a forgery.
        await using StreamClient stream = await StreamClient.OpenSseAsync(gateway.Address, GatewayHost.MintToken(account), account, since: $"{account}:0");
        var corpus = WebhookPayloads.MessageOfEveryType("wamid.native", "4915551", 1700000000);
        byte[] messages = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope(account, messages: corpus.Select(static m => m.Json),
            contacts: [WebhookPayloads.Contact("4915551", "Native")]));
        byte[] status = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope(account, statuses: [WebhookPayloads.Status("wamid.native.out", "read", 1700000100, "4915551")]));
        Assert.Equal(HttpStatusCode.OK, (await gateway.Client.SendAsync(WebhookRequest.Create(messages, GatewayHost.Secret))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await gateway.Client.SendAsync(WebhookRequest.Create(status, GatewayHost.Secret))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await gateway.Client.SendAsync(WebhookRequest.Create(messages, GatewayHost.Secret))).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await gateway.Client.SendAsync(WebhookRequest.Create(messages, "forged"))).StatusCode);

        // Sync API: each message once, as soon as the sequencer has made them visible.
        await SequencedWait.UntilSequencedAsync(database);
        List<System.Text.Json.JsonElement> synced = await SyncClient.GetAllAsync(gateway.Client, account, "messages");
        Assert.Equal(corpus.Count + 1, synced.Count);

        // The stream: exactly the logged events, in order.
        await StreamTests.AssertEveryLoggedEventOnceAsync(database, stream, [account], after: 0);
        Assert.Equal(corpus.Count, stream.Events.Count(static e => e.Kind == "message.created"));

        // /metrics, valid for promtool.
        string metrics = await gateway.Client.GetStringAsync("/metrics");
        (int exitCode, string output) = await ExternalTool.RunAsync("promtool", metrics, "check", "metrics");
        Assert.True(exitCode == 0, output);
        Assert.Contains("memo_webhook_requests_total{http_response_status_code=\"200\",memo_outcome=\"accepted\"} 3\n", metrics, StringComparison.Ordinal);

        // SIGTERM under load: every acknowledged webhook is stored, and the process exits cleanly.
        AcknowledgingSenders senders = AcknowledgingSenders.Start(gateway.Client, account, "wamid.native.load", senders: 4);
        await senders.WaitForAcknowledgedAsync(100);

        Assert.Equal(0, await gateway.TerminateAsync());
        await senders.StopAsync();
        long stored = await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE wamid = ANY($1)", [senders.Acknowledged.ToArray()]);
        Assert.Equal(senders.Acknowledged.Count, stored);
    }

    private static string FindNativeBinary()
    {
        string? configured = Environment.GetEnvironmentVariable("MEMO_NATIVE_BINARY");
        string path = !string.IsNullOrEmpty(configured)
            ? configured
            : Directory.EnumerateFiles(Path.Combine(RepositoryScript.Root, "artifacts", "aot"), "Memo.Ingest", SearchOption.AllDirectories).FirstOrDefault() ?? "";
        Assert.True(File.Exists(path), "No native binary: run deploy/publish-aot.sh first (scripts/test.sh does) or set MEMO_NATIVE_BINARY.");
        return path;
    }
}
