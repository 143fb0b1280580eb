using System.Globalization;
using Memo.Ingest.Load.OpenModel;

namespace Memo.Ingest.Load.Run;

/// <summary>
/// The sequencers' live rounds over a span of <see cref="Seconds"/>, from the gateway's own histograms
/// (<c>memo_sequencer_round_duration_seconds</c> and <c>memo_sequencer_batch_records</c>, <c>memo_lane="live"</c>): how
/// many, how long each took, how many records each took. A live event waits for the round in progress and then for its
/// own, so when the rounds run back to back (rounds a second × ms each near 1,000) the gap between the acknowledgement and
/// the event is about one and a half rounds (docs/PERFORMANCE.md, thirty-sixth session). Rounds that found nothing are
/// not in these histograms (<c>memo_sequencer_rounds_empty_total</c>). <see cref="Parse"/> gives the totals of one
/// scrape, a span from zero.
/// </summary>
internal readonly record struct SequencerRounds(double Rounds, double RoundSeconds, double Records, double Seconds)
{
    private const string Duration = "memo_sequencer_round_duration_seconds";
    private const string Batch = "memo_sequencer_batch_records";

    public double PerSecond => Seconds > 0 ? Rounds / Seconds : 0;

    public double MillisecondsEach => Rounds > 0 ? 1000 * RoundSeconds / Rounds : 0;

    public double RecordsEach => Rounds > 0 ? Records / Rounds : 0;

    /// <summary>The rounds between two scrapes, <paramref name="seconds"/> apart.</summary>
    public static SequencerRounds Between(SequencerRounds earlier, SequencerRounds later, double seconds) =>
        new(later.Rounds - earlier.Rounds, later.RoundSeconds - earlier.RoundSeconds, later.Records - earlier.Records, seconds);

    /// <summary>The totals in one scrape of /metrics, summed over every live-lane series.</summary>
    public static SequencerRounds Parse(string metrics) =>
        new(Total(metrics, Duration + "_count"), Total(metrics, Duration + "_sum"), Total(metrics, Batch + "_sum"), 0);

    private static double Total(string metrics, string series)
    {
        double total = 0;
        foreach (string line in metrics.Split('\n'))
        {
            if (line.StartsWith(series + "{", StringComparison.Ordinal)
                && line.AsSpan(series.Length, line.IndexOf('}') - series.Length).Contains(GatewayHistogram.LiveLane, StringComparison.Ordinal))
            {
                total += double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return total;
    }

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{PerSecond:F0} × {MillisecondsEach:F2} ms, {RecordsEach:F1} records");
}
