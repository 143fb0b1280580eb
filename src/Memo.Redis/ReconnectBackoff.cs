namespace Memo.Redis;

/// <summary>Exponential pauses between reconnect attempts, with jitter so that many clients do not retry in step.</summary>
internal sealed class ReconnectBackoff
{
    private readonly TimeSpan _min;
    private readonly TimeSpan _max;
    private TimeSpan _next;

    public ReconnectBackoff(TimeSpan min, TimeSpan max)
    {
        _min = min;
        _max = max < min ? min : max;
        _next = min;
    }

    public void Reset() => _next = _min;

    public TimeSpan Next()
    {
        TimeSpan delay = _next;
        _next = TimeSpan.FromTicks(Math.Min(_max.Ticks, _next.Ticks * 2));
        // Up to 20% off, never below the minimum's half.
        return delay - TimeSpan.FromTicks((long)(delay.Ticks * 0.2 * Random.Shared.NextDouble()));
    }
}
