namespace Memo.Ingest.Configuration;

/// <summary>
/// Configuration section <c>Memo:Redis</c>. Redis itself is <c>ConnectionStrings:Redis</c>, in StackExchange.Redis'
/// format (<c>host:port,user=…,password=…,ssl=true,sslHost=…,defaultDatabase=N</c>); without it the gateway runs on PostgreSQL alone: duplicates are caught by
/// its unique keys and live events reach only this instance's clients.
/// </summary>
public sealed class RedisOptions
{
    public const string Section = "Memo:Redis";

    /// <summary>Prefix of every key and channel, so several deployments can share one Redis.</summary>
    public string KeyPrefix { get; set; } = "memo:";

    /// <summary>How long a committed id is remembered. Meta retries for up to 7 days; 8 covers clock skew.</summary>
    public int DedupTtlHours { get; set; } = 192;

    /// <summary>
    /// The longest a batch waits for Redis' answer before it is written without screening. PostgreSQL still rejects
    /// the duplicates, so a slow Redis costs write capacity, never correctness.
    /// </summary>
    public int ScreenTimeoutMilliseconds { get; set; } = 50;

    /// <summary>
    /// A PEM file of the certificate authority that signed the server's TLS certificate, when it is not in the
    /// system's trust store (a private CA). Used with <c>ssl=true</c>.
    /// </summary>
    public string? TrustedCertificateFile { get; set; }

    /// <summary>The pub/sub channel (after <see cref="KeyPrefix"/>) that carries committed events between instances.</summary>
    public string EventChannel { get; set; } = "events";
}
