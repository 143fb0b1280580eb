using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;

namespace Memo.Ingest.Load.OpenModel;

/// <summary>
/// The open model of <see cref="OpenModelSender"/> (requests start on a fixed schedule, latency from each one's intended
/// start) with a client that costs the shared cores little: requests made before the run (<see cref="PreparedRequests"/>),
/// a fixed set of keep-alive connections opened before the first step, each sending the next due request as soon as it
/// is free (<see cref="RawHttpConnection"/>). A request that finds every connection busy waits in a queue of indexes,
/// which costs nothing while it grows, and its wait counts in its latency. Measured against the HttpClient sender in
/// docs/PERFORMANCE.md. Times are read from the run's <paramref name="clock"/>, which also stamps the bodies' send time.
/// </summary>
internal sealed class SocketOpenModelSender(Uri gateway, int connections, PreparedRequests requests, Func<long, int> messagesOf, Stopwatch clock)
    : IOpenModelSender
{
    /// <summary>How long requests still unanswered after the last step may take before their connections are closed.</summary>
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(60);

    public async Task<RequestSample[]> RunAsync(IReadOnlyList<LoadStep> steps, Func<int, LoadStep, Task>? onStep = null)
    {
        long total = steps.Sum(static s => s.Requests);
        if (total > requests.Count)
        {
            throw new InvalidOperationException($"The steps need {total} requests; {requests.Count} were prepared.");
        }

        var samples = new RequestSample[total];
        var due = Channel.CreateUnbounded<Due>(new UnboundedChannelOptions { SingleWriter = true, SingleReader = false });
        using var drain = new CancellationTokenSource();
        EndPoint server = new IPEndPoint(IPAddress.Parse(gateway.Host), gateway.Port);
        RawHttpConnection?[] opened = await Task.WhenAll(Enumerable.Range(0, connections).Select(async _ =>
        {
            try
            {
                return await RawHttpConnection.OpenAsync(server, drain.Token);
            }
            catch (SocketException)
            {
                return null; // opened again when it is first used
            }
        }));
        Task[] workers = [.. opened.Select(connection => Task.Run(() => WorkAsync(connection, server, due.Reader, samples, clock, drain.Token)))];

        await OpenModelSchedule.DispatchAsync(steps, clock, onStep, (index, step, intended) => due.Writer.TryWrite(new Due(index, step, intended)));
        due.Writer.Complete();
        drain.CancelAfter(DrainTimeout);
        await Task.WhenAll(workers);
        return samples;
    }

    private async Task WorkAsync(RawHttpConnection? connection, EndPoint server, ChannelReader<Due> due, RequestSample[] samples, Stopwatch clock,
        CancellationToken drain)
    {
        try
        {
            while (await due.WaitToReadAsync(CancellationToken.None))
            {
                while (due.TryRead(out Due next))
                {
                    (connection, short status, bool retryAfter) = await RawHttpConnection.SendAsync(connection, server,
                        requests.Prepare(next.Index, (long)next.Intended.TotalMicroseconds), drain);
                    long latency = (long)(clock.Elapsed - next.Intended).TotalMicroseconds;
                    samples[next.Index] = new RequestSample(next.Step, (long)next.Intended.TotalMicroseconds, (int)Math.Min(latency, int.MaxValue), status,
                        retryAfter, status == (short)HttpStatusCode.OK ? messagesOf(next.Index) : 0);
                }
            }
        }
        finally
        {
            connection?.Dispose();
        }
    }

    private readonly record struct Due(long Index, int Step, TimeSpan Intended);
}
