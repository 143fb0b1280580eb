namespace Memo.Ingest.Load.Overload;

/// <param name="MaxRate">The maximum sustainable rate (POSTs/s) the overload is a multiple of; null: measured first
/// with a step search (<see cref="CalibrationRates"/>, p99 ≤ 50 ms and only 200s).</param>
/// <param name="Factors">Overloads, as multiples of the maximum rate, each between two stretches at a quarter of it.</param>
/// <param name="MaxPeakRssBytes">A generous bound that only unbounded growth would cross.</param>
/// <param name="RecoverySeconds">The stretch at a quarter of R after each overload, by whose last 10 s acknowledgements
/// must be back under the bound: 60 s, since recovery after 5× R took 21-23 s at R = 8,000 and 34-37 s at R = 2,000 on
/// a VM 2-3× slower (the sequencers drain the overload's backlog first); 40 s left too thin a margin for CI.</param>
/// <param name="MinAcceptedShare">Fails the run when the accepted rate under overload falls below this share of the
/// maximum rate (the write path must not collapse under load).</param>
internal sealed record OverloadSettings(
    double? MaxRate = null,
    int NormalSeconds = 3,
    int OverloadSeconds = 6,
    int RecoverySeconds = 60,
    int CalibrationSeconds = 4,
    int Connections = 4096,
    long MaxPeakRssBytes = 1L << 30,
    double MinAcceptedShare = 0.7,
    string? NativeBinary = null)
{
    public double[] Factors { get; init; } = [2, 5];

    /// <summary>
    /// The step search for R. Its top, 6,000, caps R: the open-model sender keeps every intended request, so at 5× R
    /// it builds a backlog of its own that the gateway, and then its sequencers, must work off before acknowledgements
    /// are fast again. At R = 15,000 (2026-12-02) the sender was still catching up when the recovery stretch ended;
    /// at R = 8,000 (2026-12-03, CI) 5× R for 6 s was 240,000 webhooks, accepted at about 10,000 a second, and with
    /// the sequencers still working off their records (about twice as many, each message with its sender's profile)
    /// the last 10 s of the 60 s stretch had a p99 of 51-142 ms at a quarter of R, while a local run at R = 8,000
    /// recovered in 30 s. A machine that sustains more than 6,000 is then overloaded at 2× and 5× of 6,000, still
    /// beyond its capacity. Its bottom, 250, is also R on a machine that sustains none of them (a CI run on a VM 2-3×
    /// slower than usual, with its page cache emptied by the host, missed 500 twice in its first seconds); the
    /// overload checks then run against it.
    /// </summary>
    public double[] CalibrationRates { get; init; } = [250, 500, 1000, 2000, 3000, 4500, 6000];

    /// <summary>Gateway settings for the run, as environment variables (<c>--set Memo__Ingest__Writers=4</c>).</summary>
    public IReadOnlyDictionary<string, string?> GatewaySettings { get; init; } = new Dictionary<string, string?>();

    public static OverloadSettings Long => new(NormalSeconds: 10, OverloadSeconds: 60, RecoverySeconds: 60, CalibrationSeconds: 10);
}
