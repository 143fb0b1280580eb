using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using Memo.Ingest.Load.OpenModel;

namespace Memo.Ingest.Load.ClosedLoop;

/// <summary>
/// A closed loop of senders, the way a benchmark of two receivers side by side is usually run: each of
/// <c>connections</c> loops posts a fresh signed webhook, waits for the answer, and posts the next, for a fixed time.
/// Throughput is what the receiver sustains at that concurrency; latency is per request (no queueing before the send,
/// unlike <see cref="OpenModelSender"/>). Every webhook carries new messages, so nothing is a duplicate.
/// </summary>
internal sealed class ClosedLoopSender(Uri receiver, int connections, Func<long, byte[]> body, string secret) : IDisposable
{
    private readonly HttpClient _client = new(new SocketsHttpHandler
    {
        MaxConnectionsPerServer = connections,
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
        ConnectTimeout = TimeSpan.FromSeconds(5),
    })
    {
        BaseAddress = receiver,
        Timeout = TimeSpan.FromSeconds(30),
    };

    private static readonly MediaTypeHeaderValue s_json = new("application/json");
    private long _next;

    /// <summary>Runs the loops for <paramref name="duration"/>; every request started is awaited.</summary>
    public async Task<ClosedLoopResult> RunAsync(TimeSpan duration, int messagesPerPost)
    {
        var clock = Stopwatch.StartNew();
        var latencies = new List<int>[connections];
        var failures = new int[connections];
        await Task.WhenAll(Enumerable.Range(0, connections).Select(loop => Task.Run(async () =>
        {
            var mine = latencies[loop] = new List<int>(4096);
            while (clock.Elapsed < duration)
            {
                byte[] payload = body(Interlocked.Increment(ref _next));
                using var request = new HttpRequestMessage(HttpMethod.Post, "/webhooks/whatsapp") { Content = new ByteArrayContent(payload) };
                request.Content.Headers.ContentType = s_json;
                request.Headers.TryAddWithoutValidation("X-Hub-Signature-256", Memo.Ingest.TestSupport.WebhookSigner.Sign(payload, secret));
                long started = Stopwatch.GetTimestamp();
                try
                {
                    using HttpResponseMessage response = await _client.SendAsync(request);
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        mine.Add((int)Stopwatch.GetElapsedTime(started).TotalMicroseconds);
                    }
                    else
                    {
                        failures[loop]++;
                    }
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
                {
                    failures[loop]++;
                }
            }
        })));

        double seconds = clock.Elapsed.TotalSeconds;
        int acknowledged = latencies.Sum(static l => l.Count);
        return new ClosedLoopResult(acknowledged, (long)acknowledged * messagesPerPost, failures.Sum(), seconds,
            LatencySummary.Of(latencies.SelectMany(static l => l)));
    }

    public void Dispose() => _client.Dispose();
}

/// <summary>What one closed-loop run measured: 200s, messages in them, other answers, and per-request latency.</summary>
internal sealed record ClosedLoopResult(int Acknowledged, long Messages, int Failed, double Seconds, LatencySummary Latency)
{
    public double MessagesPerSecond => Messages / Seconds;
}
