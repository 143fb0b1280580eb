using System.Net.Http.Headers;

namespace Memo.Ingest.TestSupport;

/// <summary>A webhook POST as Meta sends it: JSON body, signed with an app secret (none: unsigned).</summary>
public static class WebhookRequest
{
    public static HttpRequestMessage Create(byte[] body, string? secret)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/webhooks/whatsapp") { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        if (secret is not null)
        {
            request.Headers.TryAddWithoutValidation("X-Hub-Signature-256", WebhookSigner.Sign(body, secret));
        }

        return request;
    }
}
