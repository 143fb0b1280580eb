using System.Globalization;

namespace Memo.Ingest.Load.OpenModel;

/// <summary>
/// One of the gateway's own latency histograms, scraped from /metrics: by default the acknowledgement latency
/// (<c>memo_webhook_ack_duration_seconds</c>). The difference of two scrapes gives the server-side latency of what
/// happened in between, without the time requests spent queued in the load generator.
/// </summary>
internal sealed class GatewayHistogram
{
    /// <summary>Per sequencer round, how long its oldest record had waited since it was acknowledged.</summary>
    public const string VisibilityDelay = "memo_sequencer_visibility_delay_seconds";

    private const string Acknowledgement = "memo_webhook_ack_duration_seconds";

    private readonly SortedDictionary<double, long> _cumulative;

    private GatewayHistogram(SortedDictionary<double, long> cumulative) => _cumulative = cumulative;

    /// <summary>The sequencers' rounds of live records (the history backfill's rounds are <c>memo_lane="history"</c>).</summary>
    public const string LiveLane = "memo_lane=\"live\"";

    /// <summary>Reads the buckets of <paramref name="metric"/> from one scrape of /metrics, summed over its series, or
    /// only those carrying <paramref name="label"/> (<c>name="value"</c>).</summary>
    public static GatewayHistogram Parse(string metrics, string metric = Acknowledgement, string? label = null)
    {
        var cumulative = new SortedDictionary<double, long>();
        string bucket = metric + "_bucket{";
        foreach (string line in metrics.Split('\n'))
        {
            if (!line.StartsWith(bucket, StringComparison.Ordinal)
                || (label is not null && !line.AsSpan(bucket.Length, line.IndexOf('}') - bucket.Length).Contains(label, StringComparison.Ordinal)))
            {
                continue;
            }

            int le = line.IndexOf("le=\"", StringComparison.Ordinal) + 4;
            string bound = line[le..line.IndexOf('"', le)];
            double upper = bound == "+Inf" ? double.PositiveInfinity : double.Parse(bound, CultureInfo.InvariantCulture);
            long count = (long)double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            cumulative[upper] = cumulative.GetValueOrDefault(upper) + count;
        }

        return new GatewayHistogram(cumulative);
    }

    /// <summary>The bucket bound below which <paramref name="quantile"/> of the acknowledgements between
    /// <paramref name="earlier"/> and this scrape fell, in milliseconds (a histogram cannot say more).</summary>
    public string QuantileSince(GatewayHistogram earlier, double quantile)
    {
        long total = _cumulative.GetValueOrDefault(double.PositiveInfinity) - earlier._cumulative.GetValueOrDefault(double.PositiveInfinity);
        if (total <= 0)
        {
            return "–";
        }

        foreach ((double upper, long count) in _cumulative)
        {
            if (count - earlier._cumulative.GetValueOrDefault(upper) >= quantile * total)
            {
                return double.IsPositiveInfinity(upper) ? "> 5000 ms" : string.Create(CultureInfo.InvariantCulture, $"≤ {upper * 1000:0.#} ms");
            }
        }

        return "–";
    }
}
