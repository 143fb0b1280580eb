using System.Diagnostics;
using Memo.Ingest.Load.OpenModel;
using Memo.Ingest.Load.Run;
using Memo.Ingest.TestSupport;

namespace Memo.Ingest.Load.Ceilings;

/// <summary>
/// The open model's maximum sustainable rate of any webhook receiver at an address, by one procedure for the gateway
/// and its baselines so that their maxima compare: <c>run</c>'s default mix (<see cref="PayloadMix"/>: statuses,
/// duplicates, 8 accounts) in steps of rising rate until the first that misses (ack p99 from the intended send time
/// above the bound, or any answer but 200, twice). Each step's requests are made and signed before it starts and sent by the
/// socket sender over keep-alive connections of its own, after a warm-up at its rate that is not measured, as in <c>run</c>.
/// </summary>
internal static class OpenModelLadder
{
    /// <summary>Climbs <paramref name="rates"/>; CPU shares are of <paramref name="receiver"/>'s process tree, PostgreSQL's and Redis's (if any) and the load tool's.</summary>
    public static async Task<LadderResult> ClimbAsync(Uri address, int receiver, int? postgres, int? redis, RunSettings settings, IReadOnlyList<double> rates)
    {
        var mix = new PayloadMix(settings);
        var clock = Stopwatch.StartNew();
        long sent = 0;
        var steps = new List<LadderStep>();
        foreach (double rate in rates)
        {
            // A step that misses is measured once more before it counts, as the overload command's calibration does:
            // on this machine the host's writeback of PostgreSQL's new pages stalls acknowledgements for 170-275 ms
            // every 30 s (docs/PERFORMANCE.md, eighteenth session), and a 10 s step that holds one misses at any rate.
            LadderStep step = await SendAsync(rate);
            steps.Add(step);
            if (!step.Sustainable)
            {
                step = await SendAsync(rate);
                steps.Add(step);
            }

            if (!step.Sustainable)
            {
                break;
            }
        }

        return new LadderResult(steps);

        // Each step opens its connections afresh, so each gets run's warm-up first (docs/DECISIONS.md 33 and 35): the
        // first second on new connections is slow at any rate, and a ladder would otherwise charge it to every step.
        async Task<LadderStep> SendAsync(double rate)
        {
            LoadStep[] parts = [LoadStep.WarmUpAt(rate, settings.WarmUpSeconds), LoadStep.At(rate, settings.StepSeconds)];
            long first = sent;
            sent += parts.Sum(static p => p.Requests);
            // Request indexes continue across steps, so a duplicate repeats an earlier step's webhook as in `run`.
            PreparedRequests requests = PreparedRequests.Make(sent - first, i => mix.Body(first + i, PreparedRequests.UnreadStamp), GatewayHost.Secret,
                address, WebhookRequest.Path);
            var sender = new SocketOpenModelSender(address, settings.Connections, requests, i => mix.MessageCount(first + i), clock);
            (double receiverCpu, double postgresCpu, double redisCpu, double toolCpu, TimeSpan started) = (0, 0, 0, 0, default);
            RequestSample[] samples = await sender.RunAsync(parts, (index, _) =>
            {
                if (index == 1)
                {
                    (receiverCpu, postgresCpu, redisCpu, toolCpu, started) = (ProcessCpu.Seconds(receiver), ProcessCpu.Seconds(postgres),
                        ProcessCpu.Seconds(redis), Environment.CpuUsage.TotalTime.TotalSeconds, clock.Elapsed);
                }

                return Task.CompletedTask;
            });
            double wall = (clock.Elapsed - started).TotalSeconds;
            RequestSample[] measured = [.. samples.Where(static s => s.Step == 1)];
            RequestSample[] acknowledged = [.. measured.Where(static s => s.Status == 200)];
            LatencySummary latency = LatencySummary.Of(acknowledged.Select(static s => s.LatencyMicroseconds));
            int other = measured.Length - acknowledged.Length + samples.Count(static s => s.Step == 0 && s.Status != 200);
            return new LadderStep(rate, acknowledged.Length, other, acknowledged.Sum(static s => (long)s.Messages) / parts[1].AnsweredSeconds(measured), latency,
                100 * (ProcessCpu.Seconds(receiver) - receiverCpu) / wall, 100 * (ProcessCpu.Seconds(postgres) - postgresCpu) / wall,
                100 * (ProcessCpu.Seconds(redis) - redisCpu) / wall, 100 * (Environment.CpuUsage.TotalTime.TotalSeconds - toolCpu) / wall,
                Sustainable: other == 0 && latency.Count > 0 && latency.P99 <= settings.P99BoundMilliseconds);
        }
    }
}

/// <summary>The steps a ladder sent, a rate that missed once followed by its second try; the last, the first rate that missed twice (unless every rate held).</summary>
internal sealed record LadderResult(IReadOnlyList<LadderStep> Steps)
{
    /// <summary>The highest rate that held, 0 if none did.</summary>
    public double MaxSustainableRate => Steps.Where(static s => s.Sustainable).Select(static s => s.Rate).DefaultIfEmpty(0).Max();
}

/// <summary>One step: answers, acknowledged messages/s, latency of the 200s, and CPU as shares of one core.</summary>
internal sealed record LadderStep(double Rate, int Ok, int Other, double MessagesPerSecond, LatencySummary Latency, double ReceiverCpuPercent,
    double PostgresCpuPercent, double RedisCpuPercent, double LoadToolCpuPercent, bool Sustainable);
