using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Memo.Ingest.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// Slow-loris headers, trickled bodies and two thousand idle connections at once: the gateway cuts the slow ones off
/// at its configured limits (Memo:Server) and real webhooks keep being acknowledged meanwhile.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class SlowClientTests(PostgresFixture postgres, ITestOutputHelper output)
{
    [Fact]
    public async Task SlowHeadersSlowBodiesAndIdleConnections_AreCutOff_WhileRealTrafficIsServed()
    {
        string database = await postgres.Server.CreateDatabaseAsync("slowclients");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database,
            "--Memo:Server:RequestHeadersTimeoutSeconds=2", "--Memo:Server:MinRequestBodyGraceSeconds=2", "--Memo:Server:MinRequestBodyBytesPerSecond=1024");
        IPEndPoint endpoint = new(IPAddress.Loopback, gateway.Address.Port);
        using var stop = new CancellationTokenSource();

        var idle = new List<Socket>();
        for (int i = 0; i < 2000; i++)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(endpoint);
            idle.Add(socket);
        }

        byte[] validBody = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope("PNslow", messages: [WebhookPayloads.TextMessage("wamid.slow", "49", 1700000000, "slow")]));
        string bodyHeaders = "POST /webhooks/whatsapp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
                             $"X-Hub-Signature-256: {WebhookSigner.Sign(validBody, GatewayHost.Secret)}\r\nContent-Length: 100000\r\n\r\n";
        Task<TimeSpan?>[] slowHeaders = [.. Enumerable.Range(0, 20).Select(_ => TrickleAsync(endpoint, "", "POST /webhooks/whatsapp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + new string('a', 200), stop.Token))];
        Task<TimeSpan?>[] slowBodies = [.. Enumerable.Range(0, 20).Select(_ => TrickleAsync(endpoint, bodyHeaders, new string(' ', 100000), stop.Token))];

        // Real traffic meanwhile, from a normal client.
        var latencies = new List<double>();
        for (int i = 0; i < 100; i++)
        {
            string body = WebhookPayloads.Envelope("PNreal", messages: [WebhookPayloads.TextMessage($"wamid.real.{i}", "49", 1700000000 + i, "real")]);
            var clock = Stopwatch.StartNew();
            using HttpResponseMessage response = await gateway.PostWebhookAsync(body);
            latencies.Add(clock.Elapsed.TotalMilliseconds);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        latencies.Sort();
        output.WriteLine($"real webhooks beside 2000 idle, 20 slow-header and 20 slow-body connections: p50 {latencies[49]:F1} ms, max {latencies[^1]:F1} ms");
        Assert.Equal(100, await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE account = 'PNreal'"));

        // Every slow client was cut off by the server, well before it could finish.
        TimeSpan?[] headerCutOffs = await Task.WhenAll(slowHeaders);
        TimeSpan?[] bodyCutOffs = await Task.WhenAll(slowBodies);
        output.WriteLine($"slow headers cut off after {headerCutOffs.Max()?.TotalSeconds:F1} s at most, slow bodies after {bodyCutOffs.Max()?.TotalSeconds:F1} s");
        Assert.All(headerCutOffs, static t => Assert.True(t is { TotalSeconds: < 15 }, $"a slow-header client was not cut off ({t})"));
        Assert.All(bodyCutOffs, static t => Assert.True(t is { TotalSeconds: < 15 }, $"a slow-body client was not cut off ({t})"));
        Assert.Equal(0, await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE account = 'PNslow'"));

        await stop.CancelAsync();
        foreach (Socket socket in idle)
        {
            socket.Dispose();
        }
    }

    /// <summary>Sends <paramref name="prefix"/> at once and then <paramref name="trickle"/> one byte every 250 ms; returns
    /// how long it took the server to close the connection, or null if the client got to the end.</summary>
    private static async Task<TimeSpan?> TrickleAsync(IPEndPoint endpoint, string prefix, string trickle, CancellationToken stop)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endpoint, stop);
        var clock = Stopwatch.StartNew();
        byte[] buffer = new byte[4096];
        try
        {
            if (prefix.Length > 0)
            {
                await socket.SendAsync(Encoding.ASCII.GetBytes(prefix), SocketFlags.None, stop);
            }

            foreach (char c in trickle)
            {
                await socket.SendAsync(new[] { (byte)c }, SocketFlags.None, stop);
                await Task.Delay(250, stop);
                if (socket.Poll(0, SelectMode.SelectRead))
                {
                    // Readable: a response (408, 400) or the close; either way the server is done with this client.
                    _ = socket.Receive(buffer);
                    return clock.Elapsed;
                }
            }

            return null;
        }
        catch (SocketException)
        {
            return clock.Elapsed;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }
}
