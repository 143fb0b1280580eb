using System.Security.Cryptography;
using System.Text;

namespace Memo.Ingest.TestSupport;

/// <summary>Signs a body as Meta does: <c>sha256=</c> + lowercase hex HMAC-SHA256 of the exact bytes.</summary>
public static class WebhookSigner
{
    public static string Sign(byte[] body, string secret) =>
        "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), body));

    public static string Sign(string body, string secret) => Sign(Encoding.UTF8.GetBytes(body), secret);
}
