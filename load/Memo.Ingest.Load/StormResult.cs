using System.Globalization;

namespace Memo.Ingest.Load;

/// <summary>One measured run of <see cref="StormScenario"/>; everything per delivery unless named otherwise.</summary>
internal sealed record StormResult(
    int Round, bool WithRedis, double DeliveriesPerSecond, double P50Millis, double P99Millis,
    double TransactionsPerDelivery, double PostgresMicrosPerDelivery, double RowsPerDelivery,
    double RedisMicrosPerBatch, long ScreenedByRedis, long ScreenedByPostgres)
{
    public const string Header =
        "| round | mode | deliveries/s | p50 ms | p99 ms | PG tx/delivery | PG commit us/delivery | PG rows inserted/delivery | Redis us/batch | dups screened by Redis | by PostgreSQL |\n" +
        "|---|---|---|---|---|---|---|---|---|---|---|";

    public string Row() => string.Create(CultureInfo.InvariantCulture,
        $"| {(Round == 0 ? "median" : Round.ToString(CultureInfo.InvariantCulture))} | {(WithRedis ? "PostgreSQL + Redis" : "PostgreSQL only")} | {DeliveriesPerSecond:F0} | {P50Millis:F2} | {P99Millis:F2} | " +
        $"{TransactionsPerDelivery:F3} | {PostgresMicrosPerDelivery:F0} | {RowsPerDelivery:F2} | {RedisMicrosPerBatch:F0} | {ScreenedByRedis} | {ScreenedByPostgres} |");

    public static StormResult Median(List<StormResult> runs) => new(
        0, runs[0].WithRedis,
        Median(runs, static r => r.DeliveriesPerSecond), Median(runs, static r => r.P50Millis), Median(runs, static r => r.P99Millis),
        Median(runs, static r => r.TransactionsPerDelivery), Median(runs, static r => r.PostgresMicrosPerDelivery),
        Median(runs, static r => r.RowsPerDelivery), Median(runs, static r => r.RedisMicrosPerBatch),
        (long)Median(runs, static r => r.ScreenedByRedis), (long)Median(runs, static r => r.ScreenedByPostgres));

    private static double Median(List<StormResult> runs, Func<StormResult, double> value)
    {
        double[] sorted = runs.Select(value).Order().ToArray();
        return sorted[sorted.Length / 2];
    }
}
