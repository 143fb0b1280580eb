namespace Memo.Ingest.Outbox;

/// <summary>
/// Meta's limits as a schedule rather than a discovery: the generic cell rate algorithm (GCRA) per key, which keeps one
/// number per key, the earliest time the next send may go, and answers "when" rather than only "not now", so a reply
/// can be given its slot (or be deferred in the database to the time it gets one) instead of being polled for.
/// With a burst of 1 it spaces sends exactly 1/rate apart (the account's throughput); with a burst of n it lets n go
/// at once and then one per interval (the pair rate).
/// Not thread-safe: the sender uses it under one lock (its loop plans slots; sends gate on it and apply Meta's holds).
/// </summary>
internal sealed class SendPacer<TKey>
    where TKey : notnull
{
    // Per key: the theoretical time (Stopwatch-like ticks of TimeProvider) at which the key is fully caught up.
    private readonly Dictionary<TKey, long> _caughtUp = [];

    /// <summary>
    /// The earliest time a send for <paramref name="key"/> may go: now, or later if the key is ahead of its rate.
    /// </summary>
    public long EarliestSlot(TKey key, long now, long interval, int burst)
    {
        long caughtUp = _caughtUp.TryGetValue(key, out long value) ? value : now;
        return Math.Max(now, caughtUp - ((Math.Max(1, burst) - 1) * interval));
    }

    /// <summary>Books a send for <paramref name="key"/> at <paramref name="slot"/> (from <see cref="EarliestSlot"/>).</summary>
    public void Book(TKey key, long slot, long interval)
    {
        long caughtUp = _caughtUp.TryGetValue(key, out long value) ? value : slot;
        _caughtUp[key] = Math.Max(caughtUp, slot) + interval;
    }

    /// <summary>Meta said the key is over its limit: nothing more for it before <paramref name="until"/>.</summary>
    public void Hold(TKey key, long until, long interval, int burst)
    {
        long floor = until + ((Math.Max(1, burst) - 1) * interval);
        _caughtUp[key] = _caughtUp.TryGetValue(key, out long value) ? Math.Max(value, floor) : floor;
    }

    /// <summary>Forgets keys that are caught up (they would allow a full burst anyway), so the map stays small.</summary>
    public void Trim(long now)
    {
        foreach (KeyValuePair<TKey, long> entry in _caughtUp)
        {
            if (entry.Value <= now)
            {
                _caughtUp.Remove(entry.Key);
            }
        }
    }
}
