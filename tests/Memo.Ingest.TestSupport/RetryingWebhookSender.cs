using System.Collections.Concurrent;
using System.Net;

namespace Memo.Ingest.TestSupport;

/// <summary>
/// Delivers webhooks the way Meta does: a delivery that is not answered 200 (an error status, a refused or reset
/// connection, a timeout) is sent again, with growing backoff, until it is. Deliveries are spread round-robin over
/// several gateway instances, and a retry goes to the next instance, as a load balancer would send it. Counts every
/// attempt by outcome, so a test can show that nothing was answered 500 and everything was eventually acknowledged.
/// </summary>
public sealed class RetryingWebhookSender : IDisposable
{
    /// <summary>The outcome recorded for an attempt that got no HTTP response at all.</summary>
    public const int NoResponse = 0;

    private readonly HttpClient[] _instances;
    private readonly string _secret;
    private readonly TimeSpan _firstBackoff;
    private readonly TimeSpan _maxBackoff;
    private readonly ConcurrentDictionary<int, int> _outcomes = new();
    private int _turn;
    private int _acknowledged;

    public RetryingWebhookSender(IEnumerable<Uri> instances, string secret, TimeSpan? firstBackoff = null, TimeSpan? maxBackoff = null,
        TimeSpan? attemptTimeout = null)
    {
        _instances = [.. instances.Select(address => new HttpClient(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(2) })
        {
            BaseAddress = address,
            Timeout = attemptTimeout ?? TimeSpan.FromSeconds(10),
        })];
        _secret = secret;
        _firstBackoff = firstBackoff ?? TimeSpan.FromMilliseconds(50);
        _maxBackoff = maxBackoff ?? TimeSpan.FromSeconds(1);
    }

    /// <summary>Attempts by outcome: HTTP status code, or <see cref="NoResponse"/>.</summary>
    public IReadOnlyDictionary<int, int> Outcomes => _outcomes;

    public int Attempts => _outcomes.Values.Sum();

    public int Acknowledged => Volatile.Read(ref _acknowledged);

    /// <summary>Sends one delivery until it is answered 200; returns how many attempts it took.</summary>
    public async Task<int> DeliverAsync(byte[] body, CancellationToken cancellationToken = default)
    {
        TimeSpan backoff = _firstBackoff;
        int instance = Interlocked.Increment(ref _turn);
        for (int attempt = 1; ; attempt++, instance++)
        {
            int outcome = await AttemptAsync(_instances[(int)((uint)instance % (uint)_instances.Length)], body, cancellationToken);
            _outcomes.AddOrUpdate(outcome, 1, static (_, n) => n + 1);
            if (outcome == (int)HttpStatusCode.OK)
            {
                Interlocked.Increment(ref _acknowledged);
                return attempt;
            }

            await Task.Delay(backoff, cancellationToken);
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, _maxBackoff.Ticks));
        }
    }

    private async Task<int> AttemptAsync(HttpClient gateway, byte[] body, CancellationToken cancellationToken)
    {
        try
        {
            using HttpResponseMessage response = await gateway.SendAsync(WebhookRequest.Create(body, _secret), cancellationToken);
            return (int)response.StatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or IOException || (e is TaskCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return NoResponse;
        }
    }

    public void Dispose()
    {
        foreach (HttpClient client in _instances)
        {
            client.Dispose();
        }
    }
}
