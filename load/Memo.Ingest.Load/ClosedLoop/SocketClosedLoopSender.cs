using System.Diagnostics;
using System.Net;
using Memo.Ingest.Load.OpenModel;

namespace Memo.Ingest.Load.ClosedLoop;

/// <summary>
/// The closed-loop steps of a <c>run</c> (<see cref="LoadStep.ClosedLoopConnections"/>): each of that many keep-alive
/// connections posts the next prepared request as soon as its last one is answered, for the step's duration. That is
/// how a side-by-side benchmark of receivers is usually run (issue 19 states its live-event target that way), with the
/// run's subscribers and loss check beside it. Each request's latency counts from its actual send; requests are
/// numbered across the run in the order they are sent, so the samples returned are those of requests 0 to n − 1 and
/// line up with the <see cref="PreparedRequests"/> (and the payload mix) as the open model's do.
/// </summary>
internal sealed class SocketClosedLoopSender(Uri gateway, PreparedRequests requests, Func<long, int> messagesOf, Stopwatch clock) : IOpenModelSender
{
    /// <summary>How long a request still unanswered at the end of its step may take before its connection is closed.</summary>
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(60);

    private long _lastIndex = -1;

    public async Task<RequestSample[]> RunAsync(IReadOnlyList<LoadStep> steps, Func<int, LoadStep, Task>? onStep = null)
    {
        if (steps.Any(static s => !s.IsClosedLoop))
        {
            throw new InvalidOperationException("A closed-loop run has closed-loop steps only.");
        }

        var samples = new RequestSample[requests.Count];
        EndPoint server = new IPEndPoint(IPAddress.Parse(gateway.Host), gateway.Port);
        var connections = new RawHttpConnection?[steps.Max(static s => s.ClosedLoopConnections)];
        try
        {
            for (int step = 0; step < steps.Count; step++)
            {
                LoadStep current = steps[step];
                if (onStep is not null)
                {
                    await onStep(step, current);
                }

                TimeSpan end = clock.Elapsed + current.Duration;
                int stepIndex = step;
                using var drain = new CancellationTokenSource(current.Duration + DrainTimeout);
                await Task.WhenAll(Enumerable.Range(0, current.ClosedLoopConnections)
                    .Select(loop => Task.Run(() => LoopAsync(connections, loop, server, stepIndex, end, samples, drain.Token))));
            }
        }
        finally
        {
            foreach (RawHttpConnection? connection in connections)
            {
                connection?.Dispose();
            }
        }

        long sent = Math.Min(Interlocked.Read(ref _lastIndex) + 1, requests.Count);
        if (sent == requests.Count)
        {
            Console.Error.WriteLine($"The closed loop used every request made for it ({sent}); its steps ended early.");
        }

        return samples[..(int)sent];
    }

    private async Task LoopAsync(RawHttpConnection?[] connections, int loop, EndPoint server, int step, TimeSpan end, RequestSample[] samples,
        CancellationToken drain)
    {
        RawHttpConnection? connection = connections[loop];
        try
        {
            while (clock.Elapsed < end)
            {
                long index = Interlocked.Increment(ref _lastIndex);
                if (index >= requests.Count)
                {
                    return;
                }

                TimeSpan sentAt = clock.Elapsed;
                (connection, short status, bool retryAfter) = await RawHttpConnection.SendAsync(connection, server,
                    requests.Prepare(index, (long)sentAt.TotalMicroseconds), drain);
                long latency = (long)(clock.Elapsed - sentAt).TotalMicroseconds;
                samples[index] = new RequestSample(step, (long)sentAt.TotalMicroseconds, (int)Math.Min(latency, int.MaxValue), status, retryAfter,
                    status == (short)HttpStatusCode.OK ? messagesOf(index) : 0);
            }
        }
        finally
        {
            // Kept for the next step; disposed at the end of the run.
            connections[loop] = connection;
        }
    }
}
