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
        Task<RawHttpConnection?>[] workers = [.. opened.Select(connection => Task.Run(() => WorkAsync(connection, server, due.Reader, samples, clock, drain.Token)))];

        await OpenModelSchedule.DispatchAsync(steps, clock, onStep, (index, step, intended) => due.Writer.TryWrite(new Due(index, step, intended)));
        // One end mark per connection, after every request: a reader ends at its mark. The connections are closed once
        // every reader has ended: thousands of them closed while the last requests were in flight held those requests'
        // answers back (the last few of a run were answered 75-85 ms late).
        for (int i = 0; i < workers.Length; i++)
        {
            due.Writer.TryWrite(Due.End);
        }

        due.Writer.Complete();
        drain.CancelAfter(DrainTimeout);
        foreach (RawHttpConnection? connection in await Task.WhenAll(workers))
        {
            connection?.Dispose();
        }

        return samples;
    }

    /// <summary>Sends due requests until the end mark; returns the connection it holds then, still open.</summary>
    private async Task<RawHttpConnection?> WorkAsync(RawHttpConnection? connection, EndPoint server, ChannelReader<Due> due, RequestSample[] samples, Stopwatch clock,
        CancellationToken drain)
    {
        try
        {
            // ReadAsync, not WaitToReadAsync: a channel hands each item to one reader blocked in ReadAsync, but wakes every
            // reader waiting in WaitToReadAsync, so with thousands of idle connections each request woke them all (the
            // tool took 270 µs of CPU per request at 2,000/s over 4,096 connections, more than the gateway).
            for (Due next = await due.ReadAsync(CancellationToken.None); !next.IsEnd; next = await due.ReadAsync(CancellationToken.None))
            {
                (connection, short status, bool retryAfter) = await RawHttpConnection.SendAsync(connection, server,
                    requests.Prepare(next.Index, (long)next.Intended.TotalMicroseconds), drain);
                long latency = (long)(clock.Elapsed - next.Intended).TotalMicroseconds;
                samples[next.Index] = new RequestSample(next.Step, (long)next.Intended.TotalMicroseconds, (int)Math.Min(latency, int.MaxValue), status,
                    retryAfter, status == (short)HttpStatusCode.OK ? messagesOf(next.Index) : 0);
            }

            return connection;
        }
        catch
        {
            connection?.Dispose();
            throw;
        }
    }

    private readonly record struct Due(long Index, int Step, TimeSpan Intended)
    {
        /// <summary>What a reader takes after the last request: it ends there.</summary>
        public static Due End => new(-1, -1, default);

        public bool IsEnd => Index < 0;
    }
}
