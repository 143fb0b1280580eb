using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using Memo.Ingest.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
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

    /// <summary>
    /// ASP.NET Core makes an Activity (and a log scope) for every request while its hosting logger is enabled at any
    /// level; the gateway turns that logger off unless the configuration names it. With the logger configured, the
    /// same check sees the Activity, so it can fail.
    /// </summary>
    [Theory]
    [InlineData(null, false)]
    [InlineData("Information", true)]
    public async Task AWebhookRequest_RunsWithoutAnActivity_UnlessTheHostingLoggerIsConfigured(string? hostingLevel, bool activityExpected)
    {
        string database = await postgres.Server.CreateDatabaseAsync("activity");
        var seen = new ConcurrentQueue<bool>();
        await using (GatewayHost gateway = await GatewayHost.StartConfiguredAsync(database,
            builder => builder.Services.AddSingleton<IStartupFilter>(new ActivityRecorder(seen)),
            hostingLevel is null ? [] : [$"--Logging:LogLevel:{GatewayApplication.HostingDiagnosticsCategory}={hostingLevel}"]))
        {
            byte[] body = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope("PNactivity", messages: [WebhookPayloads.TextMessage("wamid.activity", "49", 1700000000, "hi")]));
            Assert.Equal(HttpStatusCode.OK, (await gateway.Client.SendAsync(WebhookRequest.Create(body, GatewayHost.Secret))).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await gateway.Client.GetAsync("/healthz")).StatusCode);
        }

        Assert.Equal(2, seen.Count);
        Assert.All(seen, hadActivity => Assert.Equal(activityExpected, hadActivity));
    }

    /// <summary>Notes, for every request, whether it runs inside an Activity.</summary>
    private sealed class ActivityRecorder(ConcurrentQueue<bool> seen) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, nextMiddleware) =>
            {
                seen.Enqueue(Activity.Current is not null);
                await nextMiddleware(context);
            });
            next(app);
        };
    }
}
