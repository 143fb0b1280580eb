using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Memo.Ingest.Load.OpenModel;
using Memo.Ingest.TestSupport;

namespace Memo.Ingest.Load.Replies;

/// <summary>
/// Replies through the outbox against a fake Graph API (docs/PERFORMANCE.md, issue 18). Each round offers replies at a
/// fixed rate (open model: latency counts from each reply's intended send time) over several accounts, twice:
/// <list type="bullet">
/// <item>baseline: the application calls the Graph API itself (the fake), as it would without a gateway; latency of
/// the call;</item>
/// <item>gateway: the application posts to the outbox; latency until the reply's <c>accepted</c> state (with Meta's
/// wamid) arrives on a live stream, which is when every client knows the reply went out.</item>
/// </list>
/// It reports replies/s, the 202's latency, reply → accepted on the stream, and the calls the fake saw (each reply
/// sent once).
/// </summary>
internal sealed class ReplyScenario(ReplySettings settings)
{
    public async Task<int> RunAsync()
    {
        await using PostgresServer postgres = await PostgresServer.StartAsync();
        await using FakeGraphApi graph = await FakeGraphApi.StartAsync();
        graph.Latency = TimeSpan.FromMilliseconds(settings.GraphLatencyMilliseconds);
        var baselines = new List<ReplyRound>();
        var gateways = new List<ReplyRound>();
        Console.WriteLine($"Replies at {settings.Rate}/s over {settings.Accounts} accounts, {settings.Seconds} s per round, fake Graph API answering in {settings.GraphLatencyMilliseconds} ms:");
        // A discarded round first: the first one in a process pays for the JIT and the connection pools.
        await GatewayRoundAsync(postgres, graph, round: 0, seconds: 3);
        Console.WriteLine(ReplyRound.Header);
        for (int round = 1; round <= settings.Rounds; round++)
        {
            ReplyRound baseline = await BaselineRoundAsync(graph, round);
            Console.WriteLine(baseline.Row());
            ReplyRound gateway = await GatewayRoundAsync(postgres, graph, round);
            Console.WriteLine(gateway.Row());
            baselines.Add(baseline);
            gateways.Add(gateway);
        }

        ReplyRound baselineMedian = ReplyRound.Median(baselines);
        ReplyRound gatewayMedian = ReplyRound.Median(gateways);
        Console.WriteLine();
        Console.WriteLine($"Medians of {settings.Rounds} round(s):");
        Console.WriteLine(ReplyRound.Header);
        Console.WriteLine(baselineMedian.Row());
        Console.WriteLine(gatewayMedian.Row());
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Gateway / direct call: replies/s x{gatewayMedian.PerSecond / baselineMedian.PerSecond:F2}, " +
            $"reply -> accepted p50 {gatewayMedian.Done.P50:F1} ms vs call p50 {baselineMedian.Done.P50:F1} ms (+{gatewayMedian.Done.P50 - baselineMedian.Done.P50:F1} ms), " +
            $"p99 {gatewayMedian.Done.P99:F1} vs {baselineMedian.Done.P99:F1} ms."));
        return gateways.All(static g => g.SentOnce) ? 0 : 1;
    }

    /// <summary>The application calls the Graph API directly: the latency a reply costs without a gateway.</summary>
    private async Task<ReplyRound> BaselineRoundAsync(FakeGraphApi graph, int round)
    {
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256 }) { BaseAddress = graph.Address };
        var latencies = new ConcurrentBag<int>();
        int before = graph.Sends.Count;
        TimeSpan elapsed = await OfferAsync(settings.Seconds, async (i, intended) =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/v23.0/PNdirect{i % settings.Accounts}/messages")
            {
                Content = new StringContent(ReplyClient.Text(Recipient(round, i), "baseline"), Encoding.UTF8, "application/json"),
            };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "token");
            using HttpResponseMessage response = await http.SendAsync(request);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                latencies.Add(MicrosecondsSince(intended));
            }
        });
        int calls = graph.Sends.Count - before;
        return new ReplyRound("direct call", round, latencies.Count / elapsed.TotalSeconds, default, LatencySummary.Of(latencies), calls, calls == latencies.Count, default);
    }

    private async Task<ReplyRound> GatewayRoundAsync(PostgresServer postgres, FakeGraphApi graph, int round, int? seconds = null)
    {
        string database = await postgres.CreateDatabaseAsync("replies");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database,
            $"--Memo:Outbox:GraphBaseUrl={graph.Address}", "--Memo:Outbox:AccessToken=load-token",
            $"--Memo:Outbox:MessagesPerSecond={settings.MessagesPerSecondPerAccount.ToString(CultureInfo.InvariantCulture)}");
        string[] accounts = [.. Enumerable.Range(0, settings.Accounts).Select(static a => $"PNreply{a}")];
        var accepted = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        using var streaming = new CancellationTokenSource();
        Task stream = FollowAsync(gateway, accounts, accepted, streaming.Token);
        await Task.Delay(500);

        var queued = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        var postLatencies = new ConcurrentBag<int>();
        int before = graph.Sends.Count;
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256 }) { BaseAddress = gateway.Address };
        string[] tokens = [.. accounts.Select(static a => GatewayHost.MintSendToken(a))];
        TimeSpan elapsed = await OfferAsync(seconds ?? settings.Seconds, async (i, intended) =>
        {
            int account = i % settings.Accounts;
            using HttpResponseMessage response = await ReplyClient.PostAsync(http, accounts[account], ReplyClient.Text(Recipient(round, i), "via the outbox"),
                $"r{round}-{i}", tokens[account]);
            if (response.StatusCode == HttpStatusCode.Accepted)
            {
                postLatencies.Add(MicrosecondsSince(intended));
                string key = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("message_id").GetString()!;
                queued[key] = intended;
            }
        });

        // Replies still on their way when the offered load ends are waited for (bounded), and count in the latency.
        var deadline = Stopwatch.StartNew();
        while (queued.Keys.Any(k => !accepted.ContainsKey(k)) && deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(100);
        }

        long lastAccepted = accepted.Values.DefaultIfEmpty(Stopwatch.GetTimestamp()).Max();
        await streaming.CancelAsync();
        await stream.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        int[] done = [.. queued.Where(q => accepted.ContainsKey(q.Key)).Select(q => (int)((accepted[q.Key] - q.Value) * 1_000_000 / Stopwatch.Frequency))];
        FakeSend[] sends = [.. graph.Sends.Skip(before)];
        bool sentOnce = sends.Length == queued.Count && sends.Select(static s => s.CallbackData).Distinct().Count() == sends.Length;
        double window = Math.Max(elapsed.TotalSeconds, (double)(lastAccepted - queued.Values.DefaultIfEmpty(lastAccepted).Min()) / Stopwatch.Frequency);
        // Where the time goes: from the intended send to the call reaching the fake (queue, lease, claim, pacing).
        int[] toGraph = [.. sends.Where(s => s.CallbackData is not null && queued.ContainsKey(s.CallbackData))
            .Select(s => (int)((s.ReceivedTicks - queued[s.CallbackData!]) * 1_000_000 / Stopwatch.Frequency))];
        return new ReplyRound("gateway", round, done.Length / window, LatencySummary.Of(postLatencies), LatencySummary.Of(done), sends.Length, sentOnce,
            LatencySummary.Of(toGraph));
    }

    /// <summary>Offers <see cref="ReplySettings.Rate"/> requests per second for <paramref name="seconds"/>, each at its intended time.</summary>
    private async Task<TimeSpan> OfferAsync(int seconds, Func<int, long, Task> send)
    {
        int total = (int)(settings.Rate * seconds);
        var inFlight = new List<Task>(total);
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < total; i++)
        {
            long intended = start + (long)(i * Stopwatch.Frequency / settings.Rate);
            long wait = intended - Stopwatch.GetTimestamp();
            if (wait > 0)
            {
                await Task.Delay(TimeSpan.FromSeconds((double)wait / Stopwatch.Frequency));
            }

            int index = i;
            inFlight.Add(Task.Run(() => send(index, intended)));
        }

        await Task.WhenAll(inFlight);
        return Stopwatch.GetElapsedTime(start);
    }

    /// <summary>Reads the live stream of every account and notes when each reply first shows as accepted (or later).</summary>
    private static async Task FollowAsync(GatewayHost gateway, string[] accounts, ConcurrentDictionary<string, long> accepted, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { BaseAddress = gateway.Address, Timeout = Timeout.InfiniteTimeSpan };
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/stream/sse?accounts={string.Join(',', accounts)}");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", GatewayHost.MintToken(accounts));
        using HttpResponseMessage response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken));
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal) || !line.Contains("memo.outbox.", StringComparison.Ordinal))
            {
                continue;
            }

            long now = Stopwatch.GetTimestamp();
            using JsonDocument document = JsonDocument.Parse(line.AsMemory(6));
            JsonElement data = document.RootElement.GetProperty("data");
            if (data.TryGetProperty("status", out JsonElement status) && status.GetString() is "accepted" or "sent" or "delivered" or "read"
                && data.TryGetProperty("wamid", out JsonElement wamid))
            {
                accepted.TryAdd(wamid.GetString()!, now);
            }
        }
    }

    /// <summary>A new user per reply: the pair rate (one message per user every 6 s) never holds a reply back here.</summary>
    private static string Recipient(int round, int i) => string.Create(CultureInfo.InvariantCulture, $"1555{round:D2}{i:D7}");

    private static int MicrosecondsSince(long intended) => (int)((Stopwatch.GetTimestamp() - intended) * 1_000_000 / Stopwatch.Frequency);
}
