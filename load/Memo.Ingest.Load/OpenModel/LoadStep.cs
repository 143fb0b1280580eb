using System.Globalization;

namespace Memo.Ingest.Load.OpenModel;

/// <summary>
/// One stretch of a run: requests are scheduled at <paramref name="Rate"/> per second, or, for a closed-loop step
/// (<paramref name="ClosedLoopConnections"/> above 0, <see cref="ClosedLoop.SocketClosedLoopSender"/>), that many senders
/// each post the next request as soon as the last one is answered. A <paramref name="WarmUp"/> step is sent and reported
/// like any other but counts toward no maximum (<see cref="Run.RunSettings.WarmUpSeconds"/>).
/// </summary>
internal sealed record LoadStep(string Name, double Rate, TimeSpan Duration, bool WarmUp = false, int ClosedLoopConnections = 0)
{
    /// <summary>The most POSTs a second a closed-loop step can send: the requests made for it before the run. The bare
    /// HMAC endpoint, the fastest receiver here, answers about 25,000 a second on this box (docs/PERFORMANCE.md).</summary>
    public const double ClosedLoopCeiling = 40_000;

    public bool IsClosedLoop => ClosedLoopConnections > 0;

    /// <summary>The requests this step sends (open model), or may send at most (closed loop).</summary>
    public long Requests => (long)Math.Round((IsClosedLoop ? ClosedLoopCeiling : Rate) * Duration.TotalSeconds);

    /// <summary>The step as a report names it: its rate, or its closed loop's connections.</summary>
    public string Label => IsClosedLoop
        ? string.Create(CultureInfo.InvariantCulture, $"closed loop ×{ClosedLoopConnections}")
        : string.Create(CultureInfo.InvariantCulture, $"{Rate:F0}");

    /// <summary>A measured step of <paramref name="seconds"/> at <paramref name="rate"/>, named by its rate.</summary>
    public static LoadStep At(double rate, int seconds) =>
        new(string.Create(CultureInfo.InvariantCulture, $"{rate:F0}/s"), rate, TimeSpan.FromSeconds(seconds));

    /// <summary>A warm-up of <paramref name="seconds"/> at <paramref name="rate"/>, counted in no maximum (docs/DECISIONS.md 33).</summary>
    public static LoadStep WarmUpAt(double rate, int seconds) => new("warm-up", rate, TimeSpan.FromSeconds(seconds), WarmUp: true);

    /// <summary>A closed-loop step of <paramref name="seconds"/> with <paramref name="connections"/> senders.</summary>
    public static LoadStep ClosedLoop(int connections, int seconds, bool warmUp = false) =>
        new(warmUp ? "warm-up" : string.Create(CultureInfo.InvariantCulture, $"closed ×{connections}"), 0, TimeSpan.FromSeconds(seconds), warmUp, connections);

    /// <summary>The seconds over which this step's answers count: from its first intended send to its last 200, and
    /// never less than the step itself, so a backlog answered after the step ended is not counted as its rate.</summary>
    public double AnsweredSeconds(RequestSample[] ofStep)
    {
        long[] answered = [.. ofStep.Where(static s => s.Status == 200).Select(static s => s.IntendedMicroseconds + s.LatencyMicroseconds)];
        return answered.Length == 0 ? Duration.TotalSeconds
            : Math.Max(Duration.TotalSeconds, (answered.Max() - ofStep.Min(static s => s.IntendedMicroseconds)) / 1e6);
    }
}
