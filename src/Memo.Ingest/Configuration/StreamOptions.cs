namespace Memo.Ingest.Configuration;

/// <summary>Configuration section <c>Memo:Streams</c>: the live WebSocket and SSE streams.</summary>
public sealed class StreamOptions
{
    public const string Section = "Memo:Streams";

    /// <summary>Events waiting to be written to one client. A client this far behind is sent a resync and cut off.</summary>
    public int QueueCapacity { get; set; } = 1024;

    /// <summary>After a client overflowed its queue: how long it has to read what is pending and its resync signal
    /// before the connection is dropped.</summary>
    public int ResyncGraceSeconds { get; set; } = 30;

    /// <summary>Open stream connections per instance; more are answered 503.</summary>
    public int MaxConnections { get; set; } = 10_000;

    /// <summary>Accounts one connection may follow.</summary>
    public int MaxAccountsPerConnection { get; set; } = 100;

    /// <summary>A stream that sent nothing for this long gets a heartbeat (an SSE comment, a WebSocket ping frame); a
    /// WebSocket peer that leaves a ping unanswered for twice this is dropped.</summary>
    public int HeartbeatSeconds { get; set; } = 15;

    /// <summary>Events read from PostgreSQL per query when a client replays from its cursor (or the hub repairs).</summary>
    public int ReplayPageSize { get; set; } = 500;

    /// <summary>
    /// The most event JSON one replay page holds. A page is written and flushed, and the next one read only once the
    /// client has taken most of it, so a replaying client holds about three times this much of the server's memory
    /// (the page, its bytes in the response pipe, the transport's own buffer), whatever the size of its history.
    /// </summary>
    public int ReplayPageBytes { get; set; } = 64 * 1024;

    /// <summary>
    /// The longest an announcement lost on its way (a Redis outage, a dropped frame) delays the events of a followed
    /// account, also under steady traffic on other accounts: the hub's sweep finds and repairs it within this.
    /// </summary>
    public int LiveRepairMilliseconds { get; set; } = 1000;

    /// <summary>Announced frames that may wait for this instance's dispatcher; past that, they are dropped and their
    /// events repaired from the log.</summary>
    public int DispatchQueueFrames { get; set; } = 4096;
}
