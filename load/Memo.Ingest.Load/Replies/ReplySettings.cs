namespace Memo.Ingest.Load.Replies;

/// <summary>Options of <c>replies</c>: offered replies per second, over how many accounts, for how long, how often.</summary>
internal sealed record ReplySettings
{
    public double Rate { get; init; } = 200;

    public int Seconds { get; init; } = 10;

    public int Accounts { get; init; } = 10;

    public int Rounds { get; init; } = 3;

    /// <summary>The fake Graph API's answer time (0: the gateway's own cost alone).</summary>
    public int GraphLatencyMilliseconds { get; init; }

    /// <summary>Each account's throughput (Meta's default 80).</summary>
    public double MessagesPerSecondPerAccount { get; init; } = 80;
}
