using System.Collections.Frozen;

namespace Memo.Ingest.Auth;

/// <summary>What a validated token allows: reading the listed accounts (or all, for the <c>*</c> wildcard) until it expires.</summary>
internal sealed class AccessGrant
{
    public const string AllAccounts = "*";

    private readonly FrozenSet<string> _accounts;

    public AccessGrant(string subject, IEnumerable<string> accounts, DateTimeOffset expires)
    {
        Subject = subject;
        _accounts = accounts.ToFrozenSet(StringComparer.Ordinal);
        Expires = expires;
    }

    public string Subject { get; }

    public DateTimeOffset Expires { get; }

    public bool CanRead(string account) => _accounts.Contains(account) || _accounts.Contains(AllAccounts);
}
