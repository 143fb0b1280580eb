using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Memo.Ingest.TestSupport;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// Closed-loop senders posting signed webhooks, each with one new text message, until stopped or until the gateway
/// is gone. They record the fate of every wamid: answered 200 (it must be stored whatever happens next), answered
/// anything else (it must not be: Meta redelivers it), or not answered at all (a reset or a refused connection).
/// </summary>
internal sealed class AcknowledgingSenders
{
    private readonly ConcurrentBag<string> _acknowledged = [];
    private readonly ConcurrentBag<(string Wamid, HttpStatusCode Status)> _refused = [];
    private readonly ConcurrentBag<string> _unanswered = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task[] _senders;
    private int _sent;

    private AcknowledgingSenders(HttpClient gateway, string account, string prefix, int senders)
    {
        _senders = [.. Enumerable.Range(0, senders).Select(sender => Task.Run(() => SendAsync(gateway, account, $"{prefix}.{sender}")))];
    }

    public IReadOnlyCollection<string> Acknowledged => _acknowledged;

    /// <summary>Answered, but not with 200 (503 while stopping, say).</summary>
    public IReadOnlyCollection<(string Wamid, HttpStatusCode Status)> Refused => _refused;

    /// <summary>Sent, and never answered.</summary>
    public IReadOnlyCollection<string> Unanswered => _unanswered;

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
                else
                {
                    _refused.Add((wamid, response.StatusCode));
                }
            }
            catch (HttpRequestException)
            {
                _unanswered.Add(wamid);
                return; // the listener is gone: never acknowledged, so Meta would redeliver it
            }
        }
    }
}
