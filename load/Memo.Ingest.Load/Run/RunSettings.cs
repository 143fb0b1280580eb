namespace Memo.Ingest.Load.Run;

/// <summary>What a load run sends and who listens. Rates are webhooks (POSTs) per second.</summary>
internal sealed record RunSettings
{
    /// <summary>Steps of the run: one rate each, <see cref="StepSeconds"/> long. More than one: step mode, which
    /// reports the highest rate that held <see cref="P99BoundMilliseconds"/> with nothing but 200s.</summary>
    public double[] Rates { get; init; } = [200];

    public int StepSeconds { get; init; } = 10;

    /// <summary>Instead of <see cref="Rates"/>: closed-loop steps, one per entry, with that many connections each
    /// (<see cref="ClosedLoop.SocketClosedLoopSender"/>); the warm-up is a closed loop of the first. Empty: the open model.</summary>
    public int[] ClosedLoop { get; init; } = [];

    public bool IsClosedLoop => ClosedLoop.Length > 0;

    /// <summary>
    /// Seconds sent at the first step's rate before the steps, reported as their own row and counted in no step or
    /// maximum: the first second of a fresh gateway, PostgreSQL and load tool carries one-time costs (connections'
    /// first statements, the tool's JIT) that say nothing about a sustainable rate (docs/DECISIONS.md 33). 0: none.
    /// </summary>
    public int WarmUpSeconds { get; init; } = 2;

    public int MessagesPerPost { get; init; } = 1;

    public int Accounts { get; init; } = 8;

    /// <summary>Share of POSTs that repeat an earlier POST's messages (Meta's retries).</summary>
    public double DuplicateRatio { get; init; } = 0.05;

    /// <summary>Share of POSTs that carry status updates (sent, delivered, read) for outbound messages.</summary>
    public double StatusRatio { get; init; } = 0.2;

    /// <summary>Share of inbound messages that are text (the rest: every other message type in turn).</summary>
    public double TextShare { get; init; } = 0.7;

    /// <summary>History messages (coexistence backfill) posted beside the live load, in chunks of 1,000; 0: none.</summary>
    public int BackfillMessages { get; init; }

    /// <summary>Stream subscribers, alternately WebSocket and SSE, spread over the accounts.</summary>
    public int Subscribers { get; init; }

    public int Connections { get; init; } = 256;

    /// <summary>The sender's HTTP client (docs/PERFORMANCE.md compares them).</summary>
    public OpenModelClient Client { get; init; } = OpenModelClient.Sockets;

    public double P99BoundMilliseconds { get; init; } = 50;

    public string? NativeBinary { get; init; }

    public bool WithRedis { get; init; } = true;

    /// <summary>Gateway settings (environment variables) for this run, e.g. Memo__Sequencer__MinRoundIntervalMilliseconds.</summary>
    public Dictionary<string, string?> GatewaySettings { get; init; } = [];

    /// <summary>Where report.json, report.md and report.svg go.</summary>
    public string? ReportDirectory { get; init; }
}

/// <summary>
/// Which client sends an open-model run: <see cref="Sockets"/>, requests made before the run and sent over raw
/// keep-alive sockets (<see cref="OpenModel.SocketOpenModelSender"/>), or <see cref="HttpClient"/>, each request made
/// and signed when it is due and sent through HttpClient (<see cref="OpenModel.OpenModelSender"/>; the client of every
/// run before 2026-12-03's fourteenth session).
/// </summary>
internal enum OpenModelClient
{
    Sockets,
    HttpClient,
}
