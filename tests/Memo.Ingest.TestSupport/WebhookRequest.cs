using System.Net.Http.Headers;

namespace Memo.Ingest.TestSupport;

/// <summary>A webhook POST as Meta sends it: JSON body, signed with an app secret (none: unsigned).</summary>
public static class WebhookRequest
{
    /// <summary>The gateway's webhook endpoint.</summary>
    public const string Path = "/webhooks/whatsapp";

    public static HttpRequestMessage Create(byte[] body, string? secret) =>
        Signed(body, secret is null ? null : WebhookSigner.Sign(body, secret));

    /// <summary>A POST of a body signed beforehand (<see cref="WebhookSigner.Sign"/>): a load generator signs before it measures.</summary>
    public static HttpRequestMessage Signed(byte[] body, string? signature)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, Path) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        if (signature is not null)
        {
            request.Headers.TryAddWithoutValidation("X-Hub-Signature-256", signature);
        }

        return request;
    }
}
