namespace Memo.Ingest.Auth;

/// <summary>
/// What a token may do with its accounts: the <c>scope</c> claim, space-separated (OAuth's convention). A token
/// without the claim is a read token, as every token was before sending existed; sending needs <c>send</c>, which a
/// read token never has, so a token handed to a dashboard or a browser cannot send on the business's behalf.
/// </summary>
[Flags]
internal enum AccessScope
{
    None = 0,

    /// <summary><c>read</c>: the sync API and the live streams.</summary>
    Read = 1,

    /// <summary><c>send</c>: replies through the outbox (<c>POST /v1/accounts/{id}/messages</c>).</summary>
    Send = 2,
}

internal static class AccessScopes
{
    public const string Claim = "scope";

    public static AccessScope Parse(string? claim)
    {
        if (claim is null)
        {
            return AccessScope.Read;
        }

        AccessScope scope = AccessScope.None;
        foreach (string word in claim.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            scope |= word switch
            {
                "read" => AccessScope.Read,
                "send" => AccessScope.Send,
                _ => AccessScope.None,
            };
        }

        return scope;
    }

    public static string Format(AccessScope scope) => scope switch
    {
        AccessScope.Send => "send",
        AccessScope.Read | AccessScope.Send => "read send",
        _ => "read",
    };
}
