using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Memo.Ingest.TestSupport;

/// <summary>Posts replies to a gateway's outbox (<c>POST /v1/accounts/{id}/messages</c>) with a send token.</summary>
public static class ReplyClient
{
    public static string Text(string to, string text) =>
        $$$"""{"to":"{{{JsonEncodedText.Encode(to)}}}","type":"text","text":{"body":"{{{JsonEncodedText.Encode(text)}}}"}}""";

    public static async Task<HttpResponseMessage> PostAsync(HttpClient client, string account, string body, string? idempotencyKey = null,
        string? token = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/v1/accounts/{account}/messages")
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token ?? GatewayHost.MintSendToken(account));
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }

        return await client.SendAsync(request);
    }

    /// <summary>Posts a reply that must be queued; returns its outbox id.</summary>
    public static async Task<long> QueueAsync(HttpClient client, string account, string body, string? idempotencyKey = null)
    {
        using HttpResponseMessage response = await PostAsync(client, account, body, idempotencyKey);
        string answer = await response.Content.ReadAsStringAsync();
        if (response.StatusCode != System.Net.HttpStatusCode.Accepted)
        {
            throw new InvalidOperationException($"The reply was answered {(int)response.StatusCode}: {answer}");
        }

        return JsonDocument.Parse(answer).RootElement.GetProperty("id").GetInt64();
    }

    /// <summary>A status webhook of a reply as Meta sends it: the wamid Meta gave it and our key as biz_opaque_callback_data.</summary>
    public static string Status(string account, long outboxId, string wamid, string status, long ts, string recipient) =>
        WebhookPayloads.Envelope(account, statuses:
            [WebhookPayloads.Status(wamid, status, ts, recipient, callbackData: Memo.Ingest.Outbox.OutboxMessageKey.For(outboxId))]);
}
