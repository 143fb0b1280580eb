using System.Collections.Frozen;

namespace Memo.Ingest.Auth;

/// <summary>What a validated token allows: reading and/or sending (<see cref="AccessScope"/>) for the listed accounts (or
/// all, for the <c>*</c> wildcard) until it expires.</summary>
internal sealed class AccessGrant
{
    public const string AllAccounts = "*";

    private readonly FrozenSet<string> _accounts;

    public AccessGrant(string subject, IEnumerable<string> accounts, DateTimeOffset expires, AccessScope scope = AccessScope.Read)
    {
        Subject = subject;
        Scope = scope;
        _accounts = accounts.ToFrozenSet(StringComparer.Ordinal);
        Expires = expires;
    }

    public string Subject { get; }

    public DateTimeOffset Expires { get; }

    public AccessScope Scope { get; }

    /// <summary>Whether the token may do <paramref name="scope"/> with <paramref name="account"/>.</summary>
    public bool Allows(string account, AccessScope scope) =>
        (Scope & scope) == scope && (_accounts.Contains(account) || _accounts.Contains(AllAccounts));
}
