using System.Collections.Concurrent;
using System.Text;
using Memo.Ingest.TestSupport;

namespace Memo.Ingest.Load.Faults;

/// <summary>
/// Steady webhook traffic as Meta sends it: each loop posts new one-message webhooks, spread over the accounts and
/// the gateway instances, retries every delivery that is not answered 200 (with backoff, to the next instance) until
/// it is, and re-delivers a share of already acknowledged webhooks, as Meta does when an acknowledgement is lost.
/// Records every acknowledged message; a phase ends by stopping the loops and waiting for deliveries in flight.
/// </summary>
internal sealed class MetaTraffic : IDisposable
{
    private readonly RetryingWebhookSender _sender;
    private readonly string[] _accounts;
    private readonly double _duplicateRatio;
    private readonly int _pauseMilliseconds;
    private readonly ConcurrentDictionary<string, string> _acknowledged = new();
    private CancellationTokenSource _stop = new();
    private Task[] _loops = [];
    private int _duplicateDeliveries;
    private int _inFlight;

    public MetaTraffic(IEnumerable<Uri> instances, string[] accounts, double duplicateRatio, int pauseMilliseconds)
    {
        _sender = new RetryingWebhookSender(instances, GatewayHost.Secret, maxBackoff: TimeSpan.FromSeconds(2), attemptTimeout: TimeSpan.FromSeconds(15));
        _accounts = accounts;
        _duplicateRatio = duplicateRatio;
        _pauseMilliseconds = pauseMilliseconds;
    }

    /// <summary>Acknowledged messages: wamid → account.</summary>
    public IReadOnlyDictionary<string, string> Acknowledged => _acknowledged;

    public RetryingWebhookSender Sender => _sender;

    public int DuplicateDeliveries => Volatile.Read(ref _duplicateDeliveries);

    public int InFlight => Volatile.Read(ref _inFlight);

    public void Start(string phase, int loops)
    {
        _stop = new CancellationTokenSource();
        _loops = [.. Enumerable.Range(0, loops).Select(loop => Task.Run(() => RunLoopAsync(phase, loop)))];
    }

    /// <summary>Stops starting new deliveries and waits until every delivery already started was acknowledged.</summary>
    public async Task<bool> DrainAsync(TimeSpan bound)
    {
        await _stop.CancelAsync();
        Task all = Task.WhenAll(_loops);
        return await Task.WhenAny(all, Task.Delay(bound)) == all;
    }

    private async Task RunLoopAsync(string phase, int loop)
    {
        var random = new Random(HashCode.Combine(phase, loop));
        var delivered = new List<byte[]>();
        for (int n = 0; !_stop.IsCancellationRequested; n++)
        {
            bool duplicate = delivered.Count > 0 && random.NextDouble() < _duplicateRatio;
            string account = _accounts[(loop + n) % _accounts.Length];
            string wamid = $"wamid.{phase}.{loop}.{n}";
            byte[] body = duplicate
                ? delivered[random.Next(delivered.Count)]
                : Encoding.UTF8.GetBytes(WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage(wamid, $"49{loop}", 1700000000 + n, "fault suite")]));

            Interlocked.Increment(ref _inFlight);
            try
            {
                // Not cancellable: a delivery once started is retried until acknowledged, as Meta does.
                await _sender.DeliverAsync(body, CancellationToken.None);
            }
            finally
            {
                Interlocked.Decrement(ref _inFlight);
            }

            if (duplicate)
            {
                Interlocked.Increment(ref _duplicateDeliveries);
            }
            else
            {
                _acknowledged[wamid] = account;
                if (delivered.Count < 200)
                {
                    delivered.Add(body);
                }
            }

            if (_pauseMilliseconds > 0)
            {
                await Task.Delay(_pauseMilliseconds);
            }
        }
    }

    public void Dispose()
    {
        _stop.Dispose();
        _sender.Dispose();
    }
}
