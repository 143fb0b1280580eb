using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Memo.Ingest.TestSupport;

/// <summary>The real gateway (same composition root as Program) on 127.0.0.1 with a free port, in this process.</summary>
public sealed class GatewayHost : IAsyncDisposable
{
    public const string Secret = "test-app-secret";
    public const string RotatedSecret = "test-app-secret-next";
    public const string VerifyToken = "test-verify-token";

    /// <summary>The key that signs read tokens in every test gateway (in-process and child processes).</summary>
    public const string SigningKey = "test-signing-key-of-at-least-32-bytes";

    // Signs every token the tests mint (the gateways validate with the same key).
    private static readonly Memo.Ingest.Auth.AccessTokens s_tokens =
        new(new Memo.Ingest.Configuration.AuthOptions { SigningKeys = [SigningKey] });

    /// <summary>Mints a read token for the test gateways (<c>*</c> grants every account).</summary>
    public static string MintToken(params string[] accounts) => MintToken(TimeSpan.FromHours(1), accounts);

    public static string MintToken(TimeSpan lifetime, params string[] accounts) => s_tokens.Mint("tests", accounts, lifetime);

    /// <summary>Mints a token with the <c>send</c> scope only (replies through the outbox), for the test gateways.</summary>
    public static string MintSendToken(params string[] accounts) =>
        s_tokens.Mint("tests", accounts, TimeSpan.FromHours(1), Memo.Ingest.Auth.AccessScope.Send);

    /// <summary>Mints a token that may read and send (the inbox page replying), for the test gateways.</summary>
    public static string MintReadAndSendToken(params string[] accounts) =>
        s_tokens.Mint("tests", accounts, TimeSpan.FromHours(1), Memo.Ingest.Auth.AccessScope.Read | Memo.Ingest.Auth.AccessScope.Send);

    private int _disposed;

    private GatewayHost(WebApplication app, Uri address, string connectionString)
    {
        App = app;
        ConnectionString = connectionString;
        Address = address;
        // The default client may read every account; tests of authorization make their own clients.
        Client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(60) };
        Client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", MintToken("*"));
    }

    public WebApplication App { get; }

    public Uri Address { get; }

    public HttpClient Client { get; }

    /// <summary>The gateway's database.</summary>
    public string ConnectionString { get; }

    public static Task<GatewayHost> StartAsync(string connectionString, params string[] extraArguments) =>
        StartAsync(connectionString, logs: null, extraArguments);

    /// <summary>Starts a gateway whose log entries (every level) also go to <paramref name="logs"/>.</summary>
    public static Task<GatewayHost> StartAsync(string connectionString, LogCapture? logs, params string[] extraArguments) =>
        StartConfiguredAsync(connectionString, logs is null ? null : builder =>
        {
            builder.Logging.AddProvider(logs);
            builder.Logging.AddFilter<LogCapture>(static _ => true);
        }, extraArguments);

    /// <summary>Starts a gateway after <paramref name="configure"/> has had its builder (a test adds its own services).</summary>
    public static async Task<GatewayHost> StartConfiguredAsync(string connectionString, Action<WebApplicationBuilder>? configure,
        params string[] extraArguments)
    {
        string[] args =
        [
            "--urls=http://127.0.0.1:0",
            $"--ConnectionStrings:Postgres={connectionString}",
            $"--Memo:WhatsApp:AppSecrets:0={Secret}",
            $"--Memo:WhatsApp:AppSecrets:1={RotatedSecret}",
            $"--Memo:WhatsApp:VerifyToken={VerifyToken}",
            $"--Memo:Auth:SigningKeys:0={SigningKey}",
            "--Logging:LogLevel:Default=Warning",
            // Cursor readers in the tests poll in tight loops far above any sane client's rate; SecurityTests turns it on.
            "--Memo:Auth:ReadRequestsPerSecond=0",
            .. extraArguments,
        ];
        WebApplication app = GatewayApplication.Build(args, configure);
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new GatewayHost(app, new Uri(address), connectionString);
    }

    /// <summary>
    /// POSTs a body signed with <paramref name="secret"/> (the primary secret by default). After a 200 it waits until the
    /// records are sequenced (<see cref="SequencedWait"/>), so that the test can read what it posted; send with
    /// <see cref="Client"/> directly to see the acknowledgement alone.
    /// </summary>
    public Task<HttpResponseMessage> PostWebhookAsync(string body, string? secret = Secret) =>
        PostWebhookAsync(Encoding.UTF8.GetBytes(body), secret);

    public async Task<HttpResponseMessage> PostWebhookAsync(byte[] body, string? secret = Secret)
    {
        HttpResponseMessage response = await Client.SendAsync(WebhookRequest.Create(body, secret));
        if (response.StatusCode == System.Net.HttpStatusCode.OK)
        {
            await SequencedAsync();
        }

        return response;
    }

    /// <summary>Waits until everything acknowledged so far is sequenced (visible in the sync API and streams).</summary>
    public Task SequencedAsync() => SequencedWait.UntilSequencedAsync(ConnectionString);

    /// <summary>Stops the gateway; a test may stop it early (a restart), and the later dispose does nothing.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Client.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
