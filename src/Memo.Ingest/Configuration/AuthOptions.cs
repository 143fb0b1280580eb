namespace Memo.Ingest.Configuration;

/// <summary>
/// Configuration section <c>Memo:Auth</c>: the keys that sign read tokens (JWT, HS256) for the sync API and the live
/// streams. The first key signs new tokens; every key validates, so a key can be rotated by adding the new one
/// first and removing the old one after the longest token lifetime.
/// </summary>
public sealed class AuthOptions
{
    public const string Section = "Memo:Auth";

    /// <summary>At least 32 bytes (UTF-8) each.</summary>
    public string[] SigningKeys { get; set; } = [];

    public string Issuer { get; set; } = "memo-ingest";

    public string Audience { get; set; } = "memo-ingest";

    /// <summary>Read requests (sync pages and stream connections) each token may make per second on one instance,
    /// sustained; 0 turns the limit off. Past it the answer is 429 with Retry-After.</summary>
    public int ReadRequestsPerSecond { get; set; } = 50;

    /// <summary>How many read requests a token may make at once above the sustained rate (a client's catch-up).</summary>
    public int ReadBurst { get; set; } = 100;
}
