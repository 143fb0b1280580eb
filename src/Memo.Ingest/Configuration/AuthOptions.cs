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
}
