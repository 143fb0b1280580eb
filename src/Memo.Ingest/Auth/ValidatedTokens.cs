using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;

namespace Memo.Ingest.Auth;

/// <summary>
/// The grants of tokens validated lately, by token, so that a client's next request with the same token (the next
/// sync page, another stream connection) costs a lookup instead of a JWT validation, and every connection of one token
/// holds one shared grant. Without it, a token listing 1,000 accounts made a set of 1,000 strings per request, kept for
/// as long as each stream connection lasted: 5,000 stream connections of one such token held about 400 MB, and the
/// gateway paused for garbage collection about 0.45 s in every 9 s of a load run (docs/PERFORMANCE.md, "Stream
/// connections that share a token").
/// <para>
/// Only grants of tokens that validated are kept, under the exact token string, and only until the token expires;
/// after that the token is validated again (and refused once it is past its clock skew). Bounded by the characters of
/// the tokens kept (tokens are a client's choice and may be long): when the next one would pass the bound, the cache
/// starts empty again, so a burst of distinct tokens costs validations, never memory.
/// </para>
/// </summary>
internal sealed class ValidatedTokens(TimeProvider time, long maxCharacters)
{
    private readonly ConcurrentDictionary<string, AccessGrant> _grants = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    // Characters of the tokens kept; changed under _gate only.
    private long _characters;

    /// <summary>Tokens kept (for tests).</summary>
    public int Count => _grants.Count;

    /// <summary>The grant of <paramref name="token"/> if it validated lately and has not expired since.</summary>
    public bool TryGet(string token, [NotNullWhen(true)] out AccessGrant? grant)
    {
        if (_grants.TryGetValue(token, out grant))
        {
            if (grant.Expires > time.GetUtcNow())
            {
                return true;
            }

            lock (_gate)
            {
                if (_grants.TryRemove(new KeyValuePair<string, AccessGrant>(token, grant)))
                {
                    _characters -= token.Length;
                }
            }
        }

        grant = null;
        return false;
    }

    /// <summary>Keeps the grant of a token that has just validated.</summary>
    public void Add(string token, AccessGrant grant)
    {
        if (token.Length > maxCharacters || grant.Expires <= time.GetUtcNow())
        {
            return;
        }

        lock (_gate)
        {
            if (_grants.ContainsKey(token))
            {
                return;
            }

            if (_characters + token.Length > maxCharacters)
            {
                _grants.Clear();
                _characters = 0;
            }

            _grants[token] = grant;
            _characters += token.Length;
        }
    }
}
