namespace Memo.Ingest.Configuration;

/// <summary>
/// Configuration section <c>Memo:Server</c>: Kestrel's limits against slow and idle clients. A gateway on the public
/// internet meets slow-loris headers, trickled bodies and floods of idle connections; these bound what each costs.
/// </summary>
public sealed class ServerOptions
{
    public const string Section = "Memo:Server";

    /// <summary>Open connections per instance (webhooks, sync and streams together); past it new ones are refused.</summary>
    public int MaxConnections { get; set; } = 20_000;

    /// <summary>Time a client has to send a request's headers once it started; a slow-loris client is cut off after it.</summary>
    public int RequestHeadersTimeoutSeconds { get; set; } = 10;

    /// <summary>An idle keep-alive connection is closed after this long (Meta keeps its connections busy).</summary>
    public int KeepAliveTimeoutSeconds { get; set; } = 120;

    /// <summary>A request body must arrive at least this fast (bytes per second) after the grace period, or the
    /// connection is closed: a trickled body cannot hold a connection and a buffer for minutes.</summary>
    public int MinRequestBodyBytesPerSecond { get; set; } = 1024;

    public int MinRequestBodyGraceSeconds { get; set; } = 5;
}
