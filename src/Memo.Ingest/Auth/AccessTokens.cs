using System.Security.Claims;
using System.Text;
using Memo.Ingest.Configuration;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Memo.Ingest.Auth;

/// <summary>
/// Mints and validates read tokens: JWTs signed with HS256, with <c>iss</c>, <c>aud</c>, <c>exp</c>, <c>sub</c> (who
/// the client is), <c>accounts</c> (the phone_number_ids it grants; <c>*</c> for all) and, for anything but a read
/// token, <c>scope</c> (<see cref="AccessScope"/>).
/// </summary>
internal sealed class AccessTokens
{
    public const string AccountsClaim = "accounts";
    public const int MinimumKeyBytes = 32;

    /// <summary>Characters of validated tokens kept for their next request (<see cref="ValidatedTokens"/>): 8 MB.</summary>
    public const long ValidatedTokenCharacters = 4 * 1024 * 1024;

    private readonly JsonWebTokenHandler _handler = new() { MapInboundClaims = false };
    private readonly TokenValidationParameters _validation;
    private readonly SigningCredentials _signing;
    private readonly AuthOptions _options;
    private readonly ValidatedTokens _validated;

    /// <param name="validatedTokenCharacters">The bound of <see cref="ValidatedTokens"/>; 0 validates every request's token.</param>
    public AccessTokens(AuthOptions options, TimeProvider? time = null, long validatedTokenCharacters = ValidatedTokenCharacters)
    {
        _options = options;
        _validated = new ValidatedTokens(time ?? TimeProvider.System, validatedTokenCharacters);
        SymmetricSecurityKey[] keys = [.. options.SigningKeys.Where(static k => !string.IsNullOrEmpty(k)).Select(static k => new SymmetricSecurityKey(Encoding.UTF8.GetBytes(k)))];
        if (keys.Length == 0 || keys.Any(static k => k.Key.Length < MinimumKeyBytes))
        {
            throw new InvalidOperationException(
                $"Memo:Auth:SigningKeys needs at least one key of {MinimumKeyBytes} bytes or more (Memo__Auth__SigningKeys__0); " +
                "it signs the read tokens of the sync API and the live streams.");
        }

        _signing = new SigningCredentials(keys[0], SecurityAlgorithms.HmacSha256);
        _validation = new TokenValidationParameters
        {
            ValidIssuer = options.Issuer,
            ValidAudience = options.Audience,
            IssuerSigningKeys = keys,
            ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
            RequireExpirationTime = true,
            RequireSignedTokens = true,
            ClockSkew = TimeSpan.FromSeconds(30),
        };
    }

    public string Mint(string subject, IReadOnlyCollection<string> accounts, TimeSpan lifetime, AccessScope scope = AccessScope.Read)
    {
        var claims = new ClaimsIdentity([new Claim(JwtRegisteredClaimNames.Sub, subject), .. accounts.Select(static a => new Claim(AccountsClaim, a))]);
        if (scope != AccessScope.Read)
        {
            claims.AddClaim(new Claim(AccessScopes.Claim, AccessScopes.Format(scope)));
        }

        DateTime now = DateTime.UtcNow;
        return _handler.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = _options.Issuer,
            Audience = _options.Audience,
            Subject = claims,
            IssuedAt = now,
            NotBefore = now,
            Expires = now + lifetime,
            SigningCredentials = _signing,
        });
    }

    /// <summary>The grant of a valid token, or null for anything else (bad signature, expired, wrong audience...).</summary>
    public ValueTask<AccessGrant?> ValidateAsync(string token) =>
        _validated.TryGet(token, out AccessGrant? grant) ? ValueTask.FromResult<AccessGrant?>(grant) : ValidateAndKeepAsync(token);

    private async ValueTask<AccessGrant?> ValidateAndKeepAsync(string token)
    {
        TokenValidationResult result = await _handler.ValidateTokenAsync(token, _validation);
        if (!result.IsValid || result.ClaimsIdentity is not { } identity || result.SecurityToken is not JsonWebToken jwt)
        {
            return null;
        }

        string subject = identity.FindFirst(JwtRegisteredClaimNames.Sub)?.Value ?? "";
        var grant = new AccessGrant(subject, identity.FindAll(AccountsClaim).Select(static c => c.Value), jwt.ValidTo,
            AccessScopes.Parse(identity.FindFirst(AccessScopes.Claim)?.Value));
        _validated.Add(token, grant);
        return grant;
    }
}
