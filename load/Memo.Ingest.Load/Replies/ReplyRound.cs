using System.Globalization;
using Memo.Ingest.Load.OpenModel;

namespace Memo.Ingest.Load.Replies;

/// <summary>One round of <see cref="ReplyScenario"/>: replies/s, the answer's latency (202 for the gateway), the latency
/// until the reply is known sent (the call's answer; the accepted state on the stream), and the calls Meta saw.</summary>
internal sealed record ReplyRound(string Path, int Round, double PerSecond, LatencySummary Answer, LatencySummary Done, int Calls, bool SentOnce,
    LatencySummary ToGraph)
{
    public const string Header = "| path | round | replies/s | 202 (gateway) | reply -> call at the fake | reply -> accepted (call answered / on the stream) | calls at the fake | each sent once |\n|---|---|---|---|---|---|---|---|";

    public string Row() => string.Create(CultureInfo.InvariantCulture,
        $"| {Path} | {(Round == 0 ? "median" : Round.ToString(CultureInfo.InvariantCulture))} | {PerSecond:F0} | {Answer} | {ToGraph} | {Done} | {Calls} | {(SentOnce ? "yes" : "NO")} |");

    public static ReplyRound Median(List<ReplyRound> rounds)
    {
        static double M(IEnumerable<double> values)
        {
            double[] sorted = [.. values.Order()];
            return sorted[sorted.Length / 2];
        }

        static LatencySummary Latency(List<LatencySummary> all) =>
            new((int)M(all.Select(static l => (double)l.Count)), M(all.Select(static l => l.P50)), M(all.Select(static l => l.P90)),
                M(all.Select(static l => l.P99)), M(all.Select(static l => l.Max)));

        return new ReplyRound(rounds[0].Path, 0, M(rounds.Select(static r => r.PerSecond)), Latency([.. rounds.Select(static r => r.Answer)]),
            Latency([.. rounds.Select(static r => r.Done)]), (int)M(rounds.Select(static r => (double)r.Calls)), rounds.All(static r => r.SentOnce),
            Latency([.. rounds.Select(static r => r.ToGraph)]));
    }
}
