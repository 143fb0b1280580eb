using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Claims;
using System.Text;
using Memo.Ingest.TestSupport;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>Read tokens on the sync API: who may read which account.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ReadAuthorizationTests(PostgresFixture postgres) : IAsyncLifetime
{
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _gateway = await GatewayHost.StartAsync(await postgres.Server.CreateDatabaseAsync("auth"));
        foreach (string account in (string[])["PNalice", "PNbob"])
        {
            string body = WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage($"wamid.{account}", "49", 1700000000, "secret of " + account)]);
            Assert.Equal(HttpStatusCode.OK, (await _gateway.PostWebhookAsync(body)).StatusCode);
        }
    }

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    [Fact]
    public async Task WithoutAToken_401WithTheBearerChallenge()
    {
        using HttpResponseMessage response = await GetAsync("PNalice", token: null);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
        Assert.Contains("missing_token", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ATokenForAlice_ReadsAlice_ButNeverBob()
    {
        string token = GatewayHost.MintToken("PNalice");
        using HttpResponseMessage alice = await GetAsync("PNalice", token);
        using HttpResponseMessage bob = await GetAsync("PNbob", token);

        Assert.Equal(HttpStatusCode.OK, alice.StatusCode);
        Assert.Contains("secret of PNalice", await alice.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Forbidden, bob.StatusCode);
        string refused = await bob.Content.ReadAsStringAsync();
        Assert.Contains("account_not_granted", refused, StringComparison.Ordinal);
        Assert.DoesNotContain("secret of PNbob", refused, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheAccessTokenQueryParameter_WorksForBrowsers()
    {
        using var client = new HttpClient { BaseAddress = _gateway.Address };
        using HttpResponseMessage response = await client.GetAsync($"/v1/accounts/PNalice/messages?since_seq=0&access_token={GatewayHost.MintToken("PNalice")}");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task ForgedTamperedExpiredOrForeignTokens_AreAll401()
    {
        string valid = GatewayHost.MintToken("PNalice");
        string[] parts = valid.Split('.');
        string widened = Base64UrlEncoder.Encode(Encoding.UTF8.GetString(Base64UrlEncoder.DecodeBytes(parts[1])).Replace("PNalice", "*", StringComparison.Ordinal));
        string[] bad =
        [
            Craft("another-key-that-is-also-32-bytes-long", "memo-ingest", DateTime.UtcNow.AddHours(1)),
            Craft(GatewayHost.SigningKey, "someone-else", DateTime.UtcNow.AddHours(1)),
            Craft(GatewayHost.SigningKey, "memo-ingest", DateTime.UtcNow.AddMinutes(-5)),
            $"{parts[0]}.{widened}.{parts[2]}",
            $"{Base64UrlEncoder.Encode("""{"alg":"none","typ":"JWT"}""")}.{parts[1]}.",
            "not-a-jwt",
        ];

        foreach (string token in bad)
        {
            using HttpResponseMessage response = await GetAsync("PNalice", token);
            Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{response.StatusCode} for {token}");
        }
    }

    [Fact]
    public async Task TheTokenCommand_MintsATokenTheGatewayAccepts()
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in (string[])[Path.Combine(AppContext.BaseDirectory, "Memo.Ingest.dll"), "token", "--account", "PNalice", "--subject", "crm", "--hours", "1"])
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["Memo__Auth__SigningKeys__0"] = GatewayHost.SigningKey;
        using Process process = Process.Start(start)!;
        string token = (await process.StandardOutput.ReadToEndAsync()).Trim();
        await process.WaitForExitAsync();

        Assert.Equal(0, process.ExitCode);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync("PNalice", token)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await GetAsync("PNbob", token)).StatusCode);
    }

    private async Task<HttpResponseMessage> GetAsync(string account, string? token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/accounts/{account}/messages?since_seq=0");
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        using var client = new HttpClient { BaseAddress = _gateway.Address };
        return await client.SendAsync(request);
    }

    private static string Craft(string key, string audience, DateTime expires) => new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
    {
        Issuer = "memo-ingest",
        Audience = audience,
        Subject = new ClaimsIdentity([new Claim("accounts", "PNalice")]),
        NotBefore = expires.AddHours(-2),
        IssuedAt = expires.AddHours(-2),
        Expires = expires,
        SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(key)), SecurityAlgorithms.HmacSha256),
    });
}
