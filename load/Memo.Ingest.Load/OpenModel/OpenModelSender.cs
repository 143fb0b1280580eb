using System.Diagnostics;
using System.Net;

namespace Memo.Ingest.Load.OpenModel;

/// <summary>
/// An open-model load generator: requests are started on a fixed schedule (rate per step) whether or not earlier
/// ones have been answered, over a pool of keep-alive HTTP/1.1 connections, and each one's latency is measured from
/// its intended start. A closed loop of senders would slow down with the server and hide the queueing delay; this
/// does not. Bodies are made (and signed) by the caller's factory, numbered by request index.
/// </summary>
internal sealed class OpenModelSender : IOpenModelSender, IDisposable
{
    private readonly HttpClient _client;
    private readonly Func<long, HttpRequestMessage> _request;
    private readonly Func<long, int> _messagesOf;
    private readonly Stopwatch? _clock;

    /// <param name="request">Builds request number i.</param>
    /// <param name="messagesOf">How many messages request i carries (for throughput in messages).</param>
    /// <param name="clock">The run's clock, which times are read from; by default one started with each run.</param>
    public OpenModelSender(Uri gateway, int connections, Func<long, HttpRequestMessage> request, Func<long, int> messagesOf, Stopwatch? clock = null)
    {
        _clock = clock;
        _client = new HttpClient(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = connections,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            ConnectTimeout = TimeSpan.FromSeconds(5),
        })
        {
            BaseAddress = gateway,
            Timeout = TimeSpan.FromSeconds(60),
        };
        _request = request;
        _messagesOf = messagesOf;
    }

    /// <summary>Runs the steps back to back, then waits for every request to be answered (or to time out).</summary>
    /// <param name="onStep">Awaited before each step starts (a metrics scrape, say).</param>
    public async Task<RequestSample[]> RunAsync(IReadOnlyList<LoadStep> steps, Func<int, LoadStep, Task>? onStep = null)
    {
        long total = steps.Sum(static s => s.Requests);
        var samples = new RequestSample[total];
        var pending = new List<Task>((int)Math.Min(total, int.MaxValue));
        Stopwatch clock = _clock ?? Stopwatch.StartNew();
        await OpenModelSchedule.DispatchAsync(steps, clock, onStep, (index, step, intended) => pending.Add(SendAsync(samples, index, step, intended, clock)));
        await Task.WhenAll(pending);
        return samples;
    }

    private async Task SendAsync(RequestSample[] samples, long index, int step, TimeSpan intended, Stopwatch clock)
    {
        short status = 0;
        bool retryAfter = false;
        try
        {
            using HttpRequestMessage request = _request(index);
            using HttpResponseMessage response = await _client.SendAsync(request);
            status = (short)response.StatusCode;
            retryAfter = response.Headers.RetryAfter is not null;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
        {
            status = 0;
        }

        long latency = (long)(clock.Elapsed - intended).TotalMicroseconds;
        samples[index] = new RequestSample(step, (long)intended.TotalMicroseconds, (int)Math.Min(latency, int.MaxValue), status, retryAfter,
            status == (short)HttpStatusCode.OK ? _messagesOf(index) : 0);
    }

    public void Dispose() => _client.Dispose();
}
