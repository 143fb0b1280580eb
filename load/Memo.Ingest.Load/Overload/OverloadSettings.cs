namespace Memo.Ingest.Load.Overload;

/// <param name="MaxPeakRssBytes">A generous bound that only unbounded growth would cross.</param>
internal sealed record OverloadSettings(
    double NormalRate = 200,
    double OverloadRate = 5000,
    int NormalSeconds = 3,
    int OverloadSeconds = 6,
    int RecoverySeconds = 20,
    int Connections = 4096,
    long MaxPeakRssBytes = 1L << 30,
    string? NativeBinary = null)
{
    /// <summary>Gateway settings for the run, as environment variables (<c>--set Memo__Ingest__Writers=4</c>).</summary>
    public IReadOnlyDictionary<string, string?> GatewaySettings { get; init; } = new Dictionary<string, string?>();

    public static OverloadSettings Long => new(NormalSeconds: 10, OverloadSeconds: 60, RecoverySeconds: 30);
}
