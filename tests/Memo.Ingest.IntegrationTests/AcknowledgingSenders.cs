using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Memo.Ingest.TestSupport;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// Closed-loop senders posting signed webhooks, each with one new text message, until stopped or until the gateway
/// is gone; they record which wamids were answered 200, the ones that must be stored whatever happens next.
/// </summary>
internal sealed class AcknowledgingSenders
{
    private readonly ConcurrentBag<string> _acknowledged = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task[] _senders;
    private int _sent;

    private AcknowledgingSenders(HttpClient gateway, string account, string prefix, int senders)
    {
        _senders = [.. Enumerable.Range(0, senders).Select(sender => Task.Run(() => SendAsync(gateway, account, $"{prefix}.{sender}")))];
    }

    public IReadOnlyCollection<string> Acknowledged => _acknowledged;

    public int Sent => Volatile.Read(ref _sent);

    public static AcknowledgingSenders Start(HttpClient gateway, string account, string prefix, int senders) =>
        new(gateway, account, prefix, senders);

    public Task WaitForAcknowledgedAsync(int count, int seconds = 120) =>
        Eventually.TrueAsync(() => _acknowledged.Count >= count, $"{count} webhooks acknowledged", seconds);

    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_senders);
    }

    private async Task SendAsync(HttpClient gateway, string account, string prefix)
    {
        for (int i = 0; !_stop.IsCancellationRequested; i++)
        {
            string wamid = $"{prefix}.{i}";
            byte[] body = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage(wamid, "49", 1700000000 + i, "load")]));
            Interlocked.Increment(ref _sent);
            try
            {
                using HttpResponseMessage response = await gateway.SendAsync(WebhookRequest.Create(body, GatewayHost.Secret));
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    _acknowledged.Add(wamid);
                }
            }
            catch (HttpRequestException)
            {
                return; // the listener is gone: never acknowledged, so Meta would redeliver it
            }
        }
    }
}
