namespace Memo.Ingest.Load.OpenModel;

/// <summary>Sends an open-model run: requests on a fixed schedule, step after step, each one's latency from its intended start.</summary>
internal interface IOpenModelSender
{
    /// <summary>Runs the steps back to back, then waits for every request to be answered (or to time out).</summary>
    /// <param name="onStep">Awaited before each step starts (a metrics scrape, say).</param>
    public Task<RequestSample[]> RunAsync(IReadOnlyList<LoadStep> steps, Func<int, LoadStep, Task>? onStep = null);
}
