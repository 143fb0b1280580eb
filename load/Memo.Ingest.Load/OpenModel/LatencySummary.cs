using System.Globalization;

namespace Memo.Ingest.Load.OpenModel;

/// <summary>Percentiles of a set of latencies, in milliseconds.</summary>
internal readonly record struct LatencySummary(int Count, double P50, double P90, double P99, double Max)
{
    public static LatencySummary Of(IEnumerable<int> microseconds)
    {
        int[] sorted = [.. microseconds.Order()];
        if (sorted.Length == 0)
        {
            return default;
        }

        double At(double quantile) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(quantile * sorted.Length) - 1)] / 1000.0;
        return new LatencySummary(sorted.Length, At(0.50), At(0.90), At(0.99), sorted[^1] / 1000.0);
    }

    public override string ToString() => Count == 0 ? "–" : string.Create(CultureInfo.InvariantCulture, $"p50 {P50:F1} / p99 {P99:F1} / max {Max:F0} ms");
}
