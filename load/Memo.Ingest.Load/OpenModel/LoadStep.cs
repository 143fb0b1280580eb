namespace Memo.Ingest.Load.OpenModel;

/// <summary>One stretch of an open-model run: requests are scheduled at <paramref name="Rate"/> per second.</summary>
internal sealed record LoadStep(string Name, double Rate, TimeSpan Duration)
{
    public long Requests => (long)Math.Round(Rate * Duration.TotalSeconds);
}
