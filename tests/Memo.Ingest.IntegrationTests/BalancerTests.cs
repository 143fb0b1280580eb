using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using Memo.Ingest.TestSupport;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// The compose deployment's nginx.conf, run by a real nginx on loopback in front of two gateways (upstream host
/// names and the listen address rewritten, nothing else): webhooks, both stream transports and the 413 of an
/// oversize body pass through as the gateway answers them, and /metrics stays private.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed partial class BalancerTests(PostgresFixture postgres)
{
    [Fact]
    public async Task ComposeNginxConfig_BalancesWebhooksAndStreams_AndHidesMetrics()
    {
        string database = await postgres.Server.CreateDatabaseAsync("balancer");
        await using RedisServer redis = await RedisServer.StartAsync();
        await using GatewayHost first = await RedisDeduplicationTests.StartWithRedisAsync(database, redis);
        await using GatewayHost second = await RedisDeduplicationTests.StartWithRedisAsync(database, redis);
        await using Nginx nginx = await Nginx.StartAsync([first.Address, second.Address]);
        using var client = new HttpClient { BaseAddress = nginx.Address };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", GatewayHost.MintToken("*"));

        string token = GatewayHost.MintToken("PNlb");
        await using StreamClient sse = await StreamClient.OpenSseAsync(nginx.Address, token, "PNlb", since: "PNlb:0");
        await using StreamClient ws = await StreamClient.OpenWebSocketAsync(nginx.Address, token, "PNlb", since: "PNlb:0");
        for (int i = 0; i < 10; i++)
        {
            byte[] body = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope("PNlb", messages: [WebhookPayloads.TextMessage($"wamid.lb.{i}", "4915", 1700000000 + i, "via nginx")]));
            using HttpResponseMessage response = await client.SendAsync(WebhookRequest.Create(body, GatewayHost.Secret));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // Round-robin reached both gateways; each stream, on whichever gateway nginx chose,
        // got every event of the log once, in order.
        Assert.True(await WebhooksAnsweredAsync(first) > 0 && await WebhooksAnsweredAsync(second) > 0, "both gateways took webhooks");
        await StreamTests.AssertEveryLoggedEventOnceAsync(database, sse, ["PNlb"], after: 0);
        await StreamTests.AssertEveryLoggedEventOnceAsync(database, ws, ["PNlb"], after: 0);
        Assert.Equal(10, sse.Events.Count(static e => e.Kind == "message.created"));
        Assert.Equal(10, ws.Events.Count(static e => e.Kind == "message.created"));

        // The body limit is the gateway's: nginx passes a 5 MiB body on, and the 413 is the gateway's JSON.
        byte[] oversize = new byte[5 * 1024 * 1024];
        Array.Fill(oversize, (byte)' ');
        using (HttpResponseMessage response = await client.SendAsync(WebhookRequest.Create(oversize, GatewayHost.Secret)))
        {
            Assert.True(response.StatusCode == HttpStatusCode.RequestEntityTooLarge, $"{response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
            Assert.Contains("\"error\"", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (HttpResponseMessage metrics = await client.GetAsync("/metrics"))
        {
            Assert.Equal(HttpStatusCode.NotFound, metrics.StatusCode);
        }

        using HttpResponseMessage ready = await client.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal(10, await Database.CountAsync(database, "SELECT count(*) FROM messages"));
    }

    private static async Task<int> WebhooksAnsweredAsync(GatewayHost gateway)
    {
        string text = await gateway.Client.GetStringAsync("/metrics");
        return WebhooksOk().Matches(text).Sum(static m => (int)double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
    }

    [GeneratedRegex(@"^memo_webhook_requests_total\{[^}]*http_response_status_code=""200""[^}]*\} (\S+)", RegexOptions.Multiline)]
    private static partial Regex WebhooksOk();

    /// <summary>nginx with deploy/compose/nginx.conf, rewritten to loopback addresses, in a temporary prefix.</summary>
    private sealed partial class Nginx : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly string _prefix;

        private Nginx(Process process, string prefix, Uri address)
        {
            _process = process;
            _prefix = prefix;
            Address = address;
        }

        public Uri Address { get; }

        public static async Task<Nginx> StartAsync(Uri[] gateways)
        {
            string prefix = Directory.CreateTempSubdirectory("memo-nginx").FullName;
            // Workers run as an unprivileged user when the master is root; they buffer bodies under the prefix.
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(prefix, (UnixFileMode)0b111_101_101);
            }
            int port = PostgresServer.FreePort();
            string config = await File.ReadAllTextAsync(Path.Combine(RepositoryScript.Root, "deploy", "compose", "nginx.conf"));
            int next = 0;
            config = UpstreamServer().Replace(config, m => $"server {gateways[next++].Authority}");
            Assert.Equal(gateways.Length, next);
            config = config.Replace("listen 8080;", $"listen 127.0.0.1:{port};", StringComparison.Ordinal);
            config = $"daemon off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n" +
                     config.Replace("http {", $"http {{\n  access_log off;\n  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;", StringComparison.Ordinal);
            string file = Path.Combine(prefix, "nginx.conf");
            await File.WriteAllTextAsync(file, config);

            (int exitCode, string output) = await ExternalTool.RunAsync("nginx", null, "-t", "-p", prefix, "-c", file);
            Assert.True(exitCode == 0, "nginx -t: " + output);
            var start = new ProcessStartInfo("nginx") { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (string argument in (string[])["-p", prefix, "-c", file])
            {
                start.ArgumentList.Add(argument);
            }

            var nginx = new Nginx(Process.Start(start)!, prefix, new Uri($"http://127.0.0.1:{port}"));
            await Eventually.TrueAsync(() => PortAnswers(port), "nginx listens");
            return nginx;
        }

        private static bool PortAnswers(int port)
        {
            try
            {
                using var socket = new System.Net.Sockets.TcpClient();
                socket.Connect(IPAddress.Loopback, port);
                return true;
            }
            catch (System.Net.Sockets.SocketException)
            {
                return false;
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                // SIGQUIT: nginx's graceful stop; Kill as the fallback.
                using (Process quit = Process.Start("kill", ["-QUIT", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
                {
                    await quit.WaitForExitAsync();
                }

                if (!_process.WaitForExit(5000))
                {
                    _process.Kill(entireProcessTree: true);
                }
            }

            _process.Dispose();
            Directory.Delete(_prefix, recursive: true);
        }

        [GeneratedRegex(@"server gateway-\d+:\d+")]
        private static partial Regex UpstreamServer();
    }
}
