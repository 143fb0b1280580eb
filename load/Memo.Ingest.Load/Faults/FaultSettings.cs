namespace Memo.Ingest.Load.Faults;

/// <param name="LoadSeconds">Traffic before and after each fault.</param>
/// <param name="Kills">How many times the first gateway is SIGKILLed and restarted.</param>
/// <param name="OutageSeconds">How long PostgreSQL and Redis stay down.</param>
/// <param name="Loops">Concurrent Meta delivery loops.</param>
/// <param name="PauseMilliseconds">Pause between one loop's deliveries.</param>
/// <param name="DuplicateRatio">Share of deliveries that repeat an acknowledged webhook.</param>
/// <param name="NativeBinary">Run this Native-AOT binary instead of <c>dotnet Memo.Ingest.dll</c>.</param>
internal sealed record FaultSettings(
    int LoadSeconds = 5,
    int Kills = 2,
    int OutageSeconds = 10,
    int Loops = 8,
    int PauseMilliseconds = 5,
    double DuplicateRatio = 0.1,
    string? NativeBinary = null)
{
    /// <summary>The on-demand form: longer traffic and more kills.</summary>
    public static FaultSettings Long => new(LoadSeconds: 30, Kills: 5, OutageSeconds: 10, Loops: 16);
}
