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

    /// <summary>SSE comment / WebSocket ping interval; a WebSocket peer that does not answer within it is dropped.</summary>
    public int HeartbeatSeconds { get; set; } = 15;

    /// <summary>Events read from PostgreSQL per query when a client catches up.</summary>
    public int ReplayPageSize { get; set; } = 500;
}
