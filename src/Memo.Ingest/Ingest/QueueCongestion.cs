using System.Diagnostics;

namespace Memo.Ingest.Ingest;

/// <summary>
/// Tells a burst from a sustained overload of one ingest queue, so that the pipeline waits out the first and sheds the
/// second (docs/DECISIONS.md 34). An episode of congestion is a run of webhooks that found the queue full, with no quiet
/// stretch longer than <paramref name="quietGap"/> between two of them. While an episode is younger than
/// <paramref name="sustainedAfter"/>, a webhook that finds the queue full waits for room as before (a burst is
/// absorbed, not refused). Once it is older, the queue has been full for longer than any webhook may wait for room:
/// waiting no longer rides anything out, it only moves the queue into the senders' connections and lengthens every
/// acknowledgement, also for some time after the overload ends. Such a webhook is refused at once (503 with
/// Retry-After), and the webhooks that find room are answered as fast as the writers commit.
/// Thread-safe without locks; two racing webhooks may disagree about an episode's first moment by a few microseconds.
/// </summary>
internal sealed class QueueCongestion(TimeSpan sustainedAfter, TimeSpan quietGap)
{
    private readonly long _sustainedAfter = (long)(sustainedAfter.TotalSeconds * Stopwatch.Frequency);
    private readonly long _quietGap = (long)(quietGap.TotalSeconds * Stopwatch.Frequency);

    // Stopwatch timestamps: when the current episode began, and when a webhook last found the queue full.
    private long _episodeStart;
    private long _lastFull;

    /// <summary>
    /// Notes that a webhook found the queue full at <paramref name="now"/> (a <see cref="Stopwatch"/> timestamp); true
    /// when the queue has been congested for longer than the sustained threshold, and the webhook is to be refused now.
    /// </summary>
    public bool NoteFull(long now)
    {
        long previous = Interlocked.Exchange(ref _lastFull, now);
        if (previous == 0 || now - previous > _quietGap)
        {
            Volatile.Write(ref _episodeStart, now);
            return false;
        }

        return now - Volatile.Read(ref _episodeStart) > _sustainedAfter;
    }

    /// <summary>
    /// Whether the queue is in a sustained episode at <paramref name="now"/> by what has been noted so far, without
    /// noting anything: two reads, so that a caller can skip looking at the queue itself (which takes its lock) in
    /// the common case of no congestion.
    /// </summary>
    public bool IsSustained(long now) =>
        now - Volatile.Read(ref _lastFull) <= _quietGap && now - Volatile.Read(ref _episodeStart) > _sustainedAfter;
}
