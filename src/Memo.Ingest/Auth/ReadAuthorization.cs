using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace Memo.Ingest.Auth;

/// <summary>
/// The gate of the read APIs and of sending (<see cref="AccessScope"/>): a token from <c>Authorization: Bearer …</c> (or, for browsers, which cannot set headers on
/// EventSource and WebSocket, the <c>access_token</c> query parameter) that grants every account asked for.
/// Failures are answered here: 401 for a missing or invalid token, 403 for an account the token does not grant,
/// 429 when the token has used up its request rate (<see cref="ReadRateLimiter"/>).
/// </summary>
internal static class ReadAuthorization
{
    public static async ValueTask<AccessGrant?> AuthorizeAsync(HttpContext context, IReadOnlyList<string> accounts,
        AccessScope scope = AccessScope.Read)
    {
        string? token = ReadToken(context.Request);
        AccessGrant? grant = token is null ? null : await context.RequestServices.GetRequiredService<AccessTokens>().ValidateAsync(token);
        if (grant is null)
        {
            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            context.Response.Headers.WWWAuthenticate = token is null ? "Bearer realm=\"memo-ingest\"" : "Bearer realm=\"memo-ingest\", error=\"invalid_token\"";
            await WriteErrorAsync(context, token is null ? "missing_token" : "invalid_token",
                token is null ? "A bearer token is required (Authorization header or access_token parameter)." : "The token is invalid or expired.");
            return null;
        }

        if (!context.RequestServices.GetRequiredService<ReadRateLimiter>().TryAcquire(token!))
        {
            context.RequestServices.GetRequiredService<Observability.IngestMetrics>().ReadRateLimited();
            context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
            context.Response.Headers.RetryAfter = "1";
            await WriteErrorAsync(context, "rate_limited", "This token has made too many read requests; retry after a second.");
            return null;
        }

        foreach (string account in accounts)
        {
            if (!grant.Allows(account, scope))
            {
                context.Response.StatusCode = StatusCodes.Status403Forbidden;
                bool scoped = (grant.Scope & scope) == scope;
                await WriteErrorAsync(context, scoped ? "account_not_granted" : "scope_not_granted",
                    scoped ? "The token does not grant one of the requested accounts."
                           : $"The token does not have the '{AccessScopes.Format(scope)}' scope.");
                return null;
            }
        }

        return grant;
    }

    private static string? ReadToken(HttpRequest request)
    {
        StringValues header = request.Headers.Authorization;
        if (header.Count == 1 && header[0] is { } value && value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            string token = value["Bearer ".Length..].Trim();
            return token.Length == 0 ? null : token;
        }

        StringValues query = request.Query["access_token"];
        return query.Count == 1 && !string.IsNullOrEmpty(query[0]) ? query[0] : null;
    }

    private static Task WriteErrorAsync(HttpContext context, string code, string message)
    {
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync($$"""{"error":"{{code}}","message":"{{message}}"}""");
    }
}
