using System.Threading.RateLimiting;
using Memo.Ingest.Configuration;

namespace Memo.Ingest.Auth;

/// <summary>
/// A token bucket per read token, so one client paging in a tight loop or reconnecting a stream in a loop cannot take
/// the database's read capacity from the others. Buckets exist only for tokens that validated (an attacker's
/// random tokens are refused before they could allocate one), and idle full buckets are dropped by the limiter.
/// The limit is per instance: behind a balancer a token gets it once per replica.
/// </summary>
internal sealed class ReadRateLimiter : IDisposable
{
    private readonly PartitionedRateLimiter<string>? _limiter;

    public ReadRateLimiter(AuthOptions options)
    {
        if (options.ReadRequestsPerSecond <= 0)
        {
            return;
        }

        var bucket = new TokenBucketRateLimiterOptions
        {
            TokenLimit = Math.Max(options.ReadBurst, options.ReadRequestsPerSecond),
            TokensPerPeriod = options.ReadRequestsPerSecond,
            ReplenishmentPeriod = TimeSpan.FromSeconds(1),
            QueueLimit = 0,
            AutoReplenishment = true,
        };
        _limiter = PartitionedRateLimiter.Create<string, string>(token => RateLimitPartition.GetTokenBucketLimiter(token, _ => bucket));
    }

    /// <summary>Takes one request from the token's bucket; false when it is empty.</summary>
    public bool TryAcquire(string token)
    {
        if (_limiter is null)
        {
            return true;
        }

        using RateLimitLease lease = _limiter.AttemptAcquire(token);
        return lease.IsAcquired;
    }

    public void Dispose() => _limiter?.Dispose();
}
