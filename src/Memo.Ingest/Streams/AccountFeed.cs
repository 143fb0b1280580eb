using System.Runtime.InteropServices;

namespace Memo.Ingest.Streams;

/// <summary>
/// One followed account on this instance: its followers and the seq up to which they have been handed every event,
/// in order. This is the only place where the live path detects and closes gaps: an event is handed on only if it is
/// the next seq; an event past it starts a repair (<see cref="StreamHub"/> reads the missing seqs from the log), and
/// while the repair runs, newer events only extend it. A feed exists while it has followers.
/// Every member is called under the feed's lock, which <see cref="StreamHub"/> takes.
/// </summary>
internal sealed class AccountFeed(string account, long deliveredUpTo)
{
    private StreamSession[] _followers = [];

    /// <summary>The account's latest seq as the previous sweep read it (see <see cref="ObserveCommitted"/>).</summary>
    private long _committedAtLastSweep;

    public string Account { get; } = account;

    public Lock Gate { get; } = new();

    /// <summary>Every event up to this seq has been offered to the followers (or was before they attached).</summary>
    public long DeliveredUpTo { get; private set; } = deliveredUpTo;

    /// <summary>A repair is reading the log; events up to <see cref="RepairUpTo"/> are known to be committed.</summary>
    public bool Repairing { get; private set; }

    public long RepairUpTo { get; private set; }

    /// <summary>Set when the last follower left: the feed is out of the hub's table and takes no one new.</summary>
    public bool Closed { get; private set; }

    public int FollowerCount => _followers.Length;

    /// <summary>Events gathered for this feed by the dispatcher from one frame (dispatcher thread only).</summary>
    public List<StreamEvent> Incoming { get; } = [];

    public void Add(StreamSession session) => _followers = [.. _followers, session];

    /// <summary>Removes a follower; true when it was the last (the feed is then closed).</summary>
    public bool Remove(StreamSession session)
    {
        _followers = Array.FindAll(_followers, s => s != session);
        Closed = _followers.Length == 0;
        return Closed;
    }

    /// <summary>
    /// Hands on the events (ascending seqs) that continue the feed. Returns true when one of them is past the next seq
    /// and a repair must start; while a repair runs, the events only extend it (the repair reads them from the log).
    /// </summary>
    public bool Accept(List<StreamEvent> events)
    {
        if (events.Count == 0)
        {
            return false;
        }

        long newest = events[^1].Seq;
        if (Repairing)
        {
            RepairUpTo = Math.Max(RepairUpTo, newest);
            return false;
        }

        (int start, int end) = HandOnContinuation(events);
        if (end == events.Count)
        {
            return false;
        }

        Repairing = true;
        RepairUpTo = newest;
        return true;
    }

    /// <summary>Hands on events read from the log by a repair; returns how many continued the feed.</summary>
    public int AcceptRepaired(List<StreamEvent> events)
    {
        (int start, int end) = HandOnContinuation(events);
        return end - start;
    }

    /// <summary>Ends the repair if it has caught up (or no one follows any more); true when it has ended.</summary>
    public bool TryEndRepair()
    {
        if (DeliveredUpTo >= RepairUpTo || Closed)
        {
            Repairing = false;
            return true;
        }

        return false;
    }

    /// <summary>
    /// A sweep read the account's latest committed seq. Seqs that the previous sweep already saw committed and that
    /// are still not delivered were announced and lost (or never announced): returns true when a repair must start.
    /// After a lost subscription (<paramref name="missedAnnouncements"/>), anything committed and not delivered is.
    /// </summary>
    public bool ObserveCommitted(long committed, bool missedAnnouncements)
    {
        long suspect = missedAnnouncements ? committed : _committedAtLastSweep;
        _committedAtLastSweep = committed;
        if (Repairing)
        {
            RepairUpTo = Math.Max(RepairUpTo, suspect);
            return false;
        }

        if (suspect <= DeliveredUpTo)
        {
            return false;
        }

        Repairing = true;
        RepairUpTo = suspect;
        return true;
    }

    /// <summary>
    /// Offers the run of <paramref name="events"/> (ascending seqs) that continues the feed: events already handed on
    /// (an announcement that arrived after its repair, or a repeat) are skipped, and the run stops at the first gap.
    /// Returns where the run starts and ends.
    /// </summary>
    private (int Start, int End) HandOnContinuation(List<StreamEvent> events)
    {
        int start = 0;
        while (start < events.Count && events[start].Seq <= DeliveredUpTo)
        {
            start++;
        }

        int end = start;
        while (end < events.Count && events[end].Seq == DeliveredUpTo + 1 + (end - start))
        {
            end++;
        }

        Offer(events, start, end);
        return (start, end);
    }

    private void Offer(List<StreamEvent> events, int start, int end)
    {
        if (end <= start)
        {
            return;
        }

        // One array per account and frame, shared by every follower.
        StreamEvent[] batch = CollectionsMarshal.AsSpan(events)[start..end].ToArray();
        DeliveredUpTo = batch[^1].Seq;
        foreach (StreamSession session in _followers)
        {
            session.Offer(batch);
        }
    }
}
