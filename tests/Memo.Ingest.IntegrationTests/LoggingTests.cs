using System.Net;
using System.Text;
using Memo.Ingest.TestSupport;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>What an operator's log collector receives at the shipped log level: no secrets, no message content,
/// and no line per hostile request (those are at Debug).</summary>
[Collection(PostgresCollection.Name)]
public sealed class LoggingTests(PostgresFixture postgres)
{
    [Fact]
    public async Task AtTheDefaultLevel_LogsCarryNoSecretsNoBodiesAndNoLinePerBadRequest()
    {
        const string redisPassword = "redis-password-never-logged";
        const string bodyText = "message-text-never-logged";
        string database = await postgres.Server.CreateDatabaseAsync("logging");
        await using RedisServer redis = await RedisServer.StartAsync("--requirepass", redisPassword);
        await using GatewayProcess gateway = await GatewayProcess.StartAsync(database, PostgresServer.FreePort(),
            $"{redis.ConnectionString},password={redisPassword}", logLevel: "Information");
        await gateway.WaitForRedisAsync();

        byte[] body = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope("PNlog", messages: [WebhookPayloads.TextMessage("wamid.log", "49", 1700000000, bodyText)]));
        Assert.Equal(HttpStatusCode.OK, (await gateway.Client.SendAsync(WebhookRequest.Create(body, GatewayHost.Secret))).StatusCode);
        for (int i = 0; i < 20; i++)
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await gateway.Client.SendAsync(WebhookRequest.Create(body, "attacker-secret"))).StatusCode);
            byte[] malformed = Encoding.UTF8.GetBytes("{\"object\":\"" + bodyText);
            Assert.Equal(HttpStatusCode.BadRequest, (await gateway.Client.SendAsync(WebhookRequest.Create(malformed, GatewayHost.Secret))).StatusCode);
        }

        // An outage, so that the Redis warnings (which name the endpoint) are in the log too.
        await redis.StopAsync();
        await Eventually.TrueAsync(() => gateway.Output.Contains("is unavailable", StringComparison.Ordinal), "the Redis outage is logged");

        string log = gateway.Output;
        Assert.Contains("Connected to Redis at 127.0.0.1", log, StringComparison.Ordinal);
        Assert.Contains("password=*****", log, StringComparison.Ordinal);
        Assert.DoesNotContain(redisPassword, log, StringComparison.Ordinal);
        Assert.DoesNotContain(GatewayHost.Secret, log, StringComparison.Ordinal);
        Assert.DoesNotContain(bodyText, log, StringComparison.Ordinal);
        Assert.DoesNotContain("Webhook rejected", log, StringComparison.Ordinal);
    }
}
