using System.Globalization;

namespace Memo.Ingest.Load.OpenModel;

/// <summary>
/// One stretch of an open-model run: requests are scheduled at <paramref name="Rate"/> per second. A <paramref name="WarmUp"/>
/// step is sent and reported like any other but counts toward no maximum (<see cref="Run.RunSettings.WarmUpSeconds"/>).
/// </summary>
internal sealed record LoadStep(string Name, double Rate, TimeSpan Duration, bool WarmUp = false)
{
    public long Requests => (long)Math.Round(Rate * Duration.TotalSeconds);

    /// <summary>A measured step of <paramref name="seconds"/> at <paramref name="rate"/>, named by its rate.</summary>
    public static LoadStep At(double rate, int seconds) =>
        new(string.Create(CultureInfo.InvariantCulture, $"{rate:F0}/s"), rate, TimeSpan.FromSeconds(seconds));

    /// <summary>A warm-up of <paramref name="seconds"/> at <paramref name="rate"/>, counted in no maximum (docs/DECISIONS.md 33).</summary>
    public static LoadStep WarmUpAt(double rate, int seconds) => new("warm-up", rate, TimeSpan.FromSeconds(seconds), WarmUp: true);

    /// <summary>The seconds over which this step's answers count: from its first intended send to its last 200, and
    /// never less than the step itself, so a backlog answered after the step ended is not counted as its rate.</summary>
    public double AnsweredSeconds(RequestSample[] ofStep)
    {
        long[] answered = [.. ofStep.Where(static s => s.Status == 200).Select(static s => s.IntendedMicroseconds + s.LatencyMicroseconds)];
        return answered.Length == 0 ? Duration.TotalSeconds
            : Math.Max(Duration.TotalSeconds, (answered.Max() - ofStep.Min(static s => s.IntendedMicroseconds)) / 1e6);
    }
}
