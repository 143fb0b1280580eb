using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using Memo.Ingest.Auth;
using Memo.Ingest.Configuration;
using Memo.Ingest.TestSupport;
using Microsoft.Extensions.Options;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// The security promises of docs/SECURITY.md: signature checking cannot be switched off by accident, every read path
/// enforces a token's expiry and scope, and one token's read rate cannot starve another's.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class SecurityTests(PostgresFixture postgres)
{
    public static TheoryData<string> ReadPaths() =>
        ["/v1/accounts/PNalice/messages?since_seq=0", "/v1/accounts/PNalice/conversations?since_seq=0", "/v1/accounts/PNalice/contacts?since_seq=0",
         "/v1/stream/sse?accounts=PNalice", "/v1/stream/ws?accounts=PNalice"];

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public async Task WithoutAnAppSecret_TheGatewayRefusesToStart_AndNamesTheFlag(string? secret)
    {
        string database = await postgres.Server.CreateDatabaseAsync("nosecret");
        string[] args =
        [
            "--urls=http://127.0.0.1:0", $"--ConnectionStrings:Postgres={database}", $"--Memo:Auth:SigningKeys:0={GatewayHost.SigningKey}",
            .. secret is null ? (string[])[] : [$"--Memo:WhatsApp:AppSecrets:0={secret}"],
        ];
        OptionsValidationException refused = Assert.Throws<OptionsValidationException>(() => GatewayApplication.Build(args));
        Assert.Contains("Memo__WhatsApp__InsecureAcceptUnsignedWebhooks", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheInsecureDevelopmentFlag_StartsWithoutASecret_SaysSoLoudly_AndAcceptsUnsignedWebhooks()
    {
        string database = await postgres.Server.CreateDatabaseAsync("insecure");
        await using GatewayProcess gateway = await GatewayProcess.StartAsync(database, PostgresServer.FreePort(), logLevel: null, environment: new Dictionary<string, string?>
        {
            ["Memo__WhatsApp__AppSecrets__0"] = null,
            ["Memo__WhatsApp__InsecureAcceptUnsignedWebhooks"] = "true",
        });

        Assert.Contains("INSECURE", gateway.Output, StringComparison.Ordinal);
        Assert.Contains("crit", gateway.Output, StringComparison.Ordinal);
        Assert.Contains("\"signature\":\"disabled\"", await gateway.Client.GetStringAsync("/readyz"), StringComparison.Ordinal);
        byte[] body = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope("PNdev", messages: [WebhookPayloads.TextMessage("wamid.dev", "49", 1700000000, "unsigned")]));
        using HttpResponseMessage response = await gateway.Client.SendAsync(WebhookRequest.Create(body, secret: null));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task TheInsecureFlag_DoesNotWeakenAConfiguredSecret()
    {
        await using GatewayHost gateway = await GatewayHost.StartAsync(await postgres.Server.CreateDatabaseAsync("flagignored"),
            "--Memo:WhatsApp:InsecureAcceptUnsignedWebhooks=true");
        string body = WebhookPayloads.Envelope("PNflag", messages: [WebhookPayloads.TextMessage("wamid.flag", "49", 1700000000, "x")]);
        Assert.Equal(HttpStatusCode.Unauthorized, (await gateway.PostWebhookAsync(body, secret: null)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await gateway.PostWebhookAsync(body, secret: "")).StatusCode);
        Assert.Contains("\"signature\":\"enforced\"", await gateway.Client.GetStringAsync("/readyz"), StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(ReadPaths))]
    public async Task EveryReadPath_RefusesExpiredAndForgedTokens_AndAccountsOutsideTheTokensScope(string path)
    {
        await using GatewayHost gateway = await GatewayHost.StartAsync(await postgres.Server.CreateDatabaseAsync("readpaths"));
        var tokens = new AccessTokens(new AuthOptions { SigningKeys = [GatewayHost.SigningKey] });
        var forger = new AccessTokens(new AuthOptions { SigningKeys = ["another-key-that-is-also-32-bytes-long"] });

        Assert.Equal(HttpStatusCode.OK, await StatusAsync(gateway, path, tokens.Mint("t", ["PNalice"], TimeSpan.FromMinutes(5))));
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(gateway, path, tokens.Mint("t", ["PNalice"], TimeSpan.FromMinutes(-5))));
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(gateway, path, forger.Mint("t", ["PNalice"], TimeSpan.FromMinutes(5))));
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(gateway, path, token: null));
        Assert.Equal(HttpStatusCode.Forbidden, await StatusAsync(gateway, path, tokens.Mint("t", ["PNbob"], TimeSpan.FromMinutes(5))));
    }

    [Fact]
    public async Task ReadRateLimit_IsPerToken_Answers429WithRetryAfter_AndIsCounted()
    {
        await using GatewayHost gateway = await GatewayHost.StartAsync(await postgres.Server.CreateDatabaseAsync("ratelimit"),
            "--Memo:Auth:ReadRequestsPerSecond=5", "--Memo:Auth:ReadBurst=5");
        string greedy = GatewayHost.MintToken("PNalice");
        string polite = GatewayHost.MintToken("PNalice", "PNbob");
        const string Path = "/v1/accounts/PNalice/messages?since_seq=0";

        var statuses = new List<HttpStatusCode>();
        for (int i = 0; i < 30; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, Path);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", greedy);
            using HttpResponseMessage response = await gateway.Client.SendAsync(request);
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                Assert.Equal("1", response.Headers.RetryAfter!.ToString());
                Assert.Contains("rate_limited", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }
        }

        Assert.True(statuses.Count(static s => s == HttpStatusCode.TooManyRequests) >= 15, string.Join(',', statuses));
        Assert.True(statuses.Take(5).All(static s => s == HttpStatusCode.OK), "the burst is served");
        // The stream endpoints draw from the same bucket; another token is unaffected.
        Assert.Equal(HttpStatusCode.TooManyRequests, await StatusAsync(gateway, "/v1/stream/sse?accounts=PNalice", greedy));
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(gateway, Path, polite));
        Assert.Matches(@"memo_read_rate_limited_total\{\} [1-9]", await gateway.Client.GetStringAsync("/metrics"));

        // The bucket refills.
        await Task.Delay(1200);
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(gateway, Path, greedy));
    }

    /// <summary>The status a read path answers with this token; streams are closed as soon as their headers arrive.</summary>
    private static async Task<HttpStatusCode> StatusAsync(GatewayHost gateway, string path, string? token)
    {
        if (path.StartsWith("/v1/stream/ws", StringComparison.Ordinal))
        {
            using var socket = new ClientWebSocket();
            socket.Options.CollectHttpResponseDetails = true;
            if (token is not null)
            {
                socket.Options.SetRequestHeader("Authorization", "Bearer " + token);
            }

            try
            {
                await socket.ConnectAsync(new Uri($"ws://{gateway.Address.Authority}{path}"), CancellationToken.None);
                return HttpStatusCode.OK; // upgraded (101): the token was accepted
            }
            catch (WebSocketException)
            {
                return socket.HttpStatusCode;
            }
        }

        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        using var client = new HttpClient { BaseAddress = gateway.Address };
        using HttpResponseMessage response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        return response.StatusCode;
    }
}
