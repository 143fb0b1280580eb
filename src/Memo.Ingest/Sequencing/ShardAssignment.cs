namespace Memo.Ingest.Sequencing;

/// <summary>
/// Which sequencer session owns which shard: the leader's decision (the live session with the lowest member slot),
/// written to <c>sequencer_shards</c> and followed by every session (the advisory lock still decides who holds one).
///
/// Each shard's load is its owner's reported event rate (<see cref="ShardLoad"/>). A fixed split (<c>shard % members</c>,
/// until the twenty-third session) put 7 of the load tool's 8 accounts on one of two sessions, which then did nearly all
/// the work while the other idled; the rates let the leader spread a few busy accounts instead. The assignment changes
/// only what needs to change, starting from the current one: shards of sessions that are gone go to the least loaded,
/// then busy shards move from the busiest session to the least busy while that narrows a gap worth closing, then idle
/// shards even out the count. A balanced assignment is a fixed point, so noise in the rates moves nothing. A move is
/// announced (<see cref="SequencerLoop.RequestRebalance"/>, through Redis to other instances): the old owner gives the
/// shard up and announces that in turn, and the new owner takes it, within milliseconds; without Redis, sessions on
/// other instances follow at their next rebalance (up to <see cref="Configuration.SequencerOptions.RebalanceMilliseconds"/>),
/// and the shard's records wait that long.
///
/// Busy shards are spread only while a session cannot keep up (<see cref="SpreadAt"/>); otherwise they are gathered on
/// one session. Every session's rounds pay the statement's fixed cost, so two sessions sharing one-message webhooks
/// that one session keeps up with cost 6-26 % of the throughput on two cores, while a sequencer that is the limit (50
/// messages per webhook) gains 17-26 % from a second (docs/PERFORMANCE.md, twenty-fourth session).
/// </summary>
internal static class ShardAssignment
{
    /// <summary>A shard slower than this is idle: it is placed by count, not by load.</summary>
    public const double IdleEventsPerSecond = 1;

    /// <summary>Below this many events per second on the busiest session there is nothing worth moving.</summary>
    public const double MinimumBusyEventsPerSecond = 100;

    /// <summary>A gap between the busiest and the least busy session below this share of the busiest's load is left
    /// alone: the rates' noise is smaller than the cost of moving.</summary>
    public const double GapWorthClosing = 0.05;

    /// <summary>A move must lower the busiest session's load by at least this share of it (no swapping of a shard about
    /// as large as the gap back and forth).</summary>
    public const double SmallestGain = 0.01;

    /// <summary>Busy shards spread when the busy load was L are gathered again once it is below this share of L.</summary>
    public const double GatherBelowShareOfSpreadLoad = 0.5;

    /// <summary>
    /// Whether busy shards are spread: the busy load at which they were spread, or 0 while they are kept on one session.
    /// They are spread as soon as a session cannot keep up (<paramref name="sessionBehind"/>), and stay spread until the
    /// load has fallen below half of what it was then: a load one session could not keep up with is about what it can
    /// take, and the margin keeps a load near it from being gathered and spread again every few seconds.
    /// </summary>
    /// <param name="sessionBehind">A session's live rounds take <see cref="Configuration.SequencerOptions.SplitAboveRecordsPerRound"/> records or more.</param>
    /// <param name="busyLoad">The events per second of every shard together.</param>
    /// <param name="spreadAt">This function's last answer (0 at first).</param>
    public static double SpreadAt(bool sessionBehind, double busyLoad, double spreadAt)
    {
        if (sessionBehind)
        {
            return spreadAt > 0 ? spreadAt : Math.Max(busyLoad, MinimumBusyEventsPerSecond);
        }

        return busyLoad < GatherBelowShareOfSpreadLoad * spreadAt ? 0 : spreadAt;
    }

    /// <summary>
    /// Gives the shards without a live owner to the live <paramref name="members"/> (as <see cref="Balance"/> does first)
    /// and moves nothing else: what the leader does between its regular rebalances, when a session has left. Returns how
    /// many shards changed owner.
    /// </summary>
    public static int PlaceOrphans(IReadOnlyList<int> members, int[] owners, double[] eventsPerSecond) =>
        Balance(members, owners, eventsPerSecond, spread: false, orphansOnly: true);

    /// <summary>
    /// Rewrites <paramref name="owners"/> (the member slot of each shard, or -1 for none) into the new assignment over the
    /// live <paramref name="members"/> (their slots), given each shard's <paramref name="eventsPerSecond"/>: busy shards
    /// balanced over the sessions (<paramref name="spread"/>) or gathered on the one that holds the most of their load.
    /// Returns how many shards changed owner.
    /// </summary>
    public static int Balance(IReadOnlyList<int> members, int[] owners, double[] eventsPerSecond, bool spread = true) =>
        Balance(members, owners, eventsPerSecond, spread, orphansOnly: false);

    private static int Balance(IReadOnlyList<int> members, int[] owners, double[] eventsPerSecond, bool spread, bool orphansOnly)
    {
        if (members.Count == 0)
        {
            return 0;
        }

        var plan = new Plan(members.Count, owners.Length, eventsPerSecond);
        for (int shard = 0; shard < owners.Length; shard++)
        {
            int owner = IndexOf(members, owners[shard]);
            if (owner >= 0)
            {
                plan.Place(shard, owner);
            }
        }

        Span<double> load = plan.Load;
        Span<int> count = plan.Count;
        Span<int> member = plan.Member;

        // Shards without a live owner, busiest first, each to the least loaded session (the fewest shards among equals).
        Span<int> orphans = stackalloc int[owners.Length];
        int orphanCount = 0;
        for (int shard = 0; shard < owners.Length; shard++)
        {
            if (member[shard] < 0)
            {
                orphans[orphanCount++] = shard;
            }
        }

        SortBusiestFirst(orphans[..orphanCount], eventsPerSecond);
        foreach (int shard in orphans[..orphanCount])
        {
            int least = 0;
            for (int m = 1; m < members.Count; m++)
            {
                if (load[m] < load[least] || load[m] == load[least] && count[m] < count[least])
                {
                    least = m;
                }
            }

            plan.Place(shard, least);
        }

        if (orphansOnly)
        {
            return plan.Apply(owners, members);
        }

        if (!spread)
        {
            // Busy shards together on the session that holds the most of their load (the first of equals).
            int home = Extremes(load).Largest;
            for (int shard = 0; shard < owners.Length; shard++)
            {
                if (member[shard] != home && Rate(eventsPerSecond, shard) >= IdleEventsPerSecond)
                {
                    plan.Move(shard, home);
                }
            }
        }

        // Busy shards from the busiest session to the least busy, each time the one that narrows the gap most. Every
        // move lowers the busiest session's load, so this ends; the cap is a guard.
        for (int moves = 0; spread && moves < owners.Length; moves++)
        {
            (int busiest, int idlest) = Extremes(load);
            double gap = load[busiest] - load[idlest];
            if (load[busiest] < MinimumBusyEventsPerSecond || gap < GapWorthClosing * load[busiest])
            {
                break;
            }

            int best = -1;
            double bestGain = SmallestGain * load[busiest];
            for (int shard = 0; shard < owners.Length; shard++)
            {
                double rate = Rate(eventsPerSecond, shard);
                double gain = Math.Min(rate, gap - rate);
                if (member[shard] == busiest && rate >= IdleEventsPerSecond && gain > bestGain)
                {
                    best = shard;
                    bestGain = gain;
                }
            }

            if (best < 0)
            {
                break;
            }

            plan.Move(best, idlest);
        }

        // Idle shards even out the count, so that every session holds some before their accounts get busy.
        while (true)
        {
            (int most, int fewest) = Extremes(count);
            if (count[most] - count[fewest] <= 1)
            {
                break;
            }

            int idle = -1;
            for (int shard = 0; shard < owners.Length && idle < 0; shard++)
            {
                if (member[shard] == most && Rate(eventsPerSecond, shard) < IdleEventsPerSecond)
                {
                    idle = shard;
                }
            }

            if (idle < 0)
            {
                break;
            }

            plan.Move(idle, fewest);
        }

        return plan.Apply(owners, members);
    }

    /// <summary>The assignment being worked out: each shard's session (an index into the members, or -1), and each
    /// session's load and shard count. Made once a second, by the leader only.</summary>
    private sealed class Plan(int members, int shards, double[] eventsPerSecond)
    {
        public readonly double[] Load = new double[members];
        public readonly int[] Count = new int[members];
        public readonly int[] Member = CreateMembers(shards);

        private static int[] CreateMembers(int shards)
        {
            int[] member = new int[shards];
            Array.Fill(member, -1);
            return member;
        }

        public void Place(int shard, int to)
        {
            Member[shard] = to;
            Load[to] += Rate(eventsPerSecond, shard);
            Count[to]++;
        }

        public void Move(int shard, int to)
        {
            int from = Member[shard];
            Load[from] -= Rate(eventsPerSecond, shard);
            Count[from]--;
            Place(shard, to);
        }

        /// <summary>Writes the plan into <paramref name="owners"/> (member slots); returns how many shards changed owner.</summary>
        public int Apply(int[] owners, IReadOnlyList<int> members)
        {
            int changed = 0;
            for (int shard = 0; shard < owners.Length; shard++)
            {
                changed += owners[shard] != members[Member[shard]] ? 1 : 0;
                owners[shard] = members[Member[shard]];
            }

            return changed;
        }
    }

    private static double Rate(ReadOnlySpan<double> eventsPerSecond, int shard) =>
        shard < eventsPerSecond.Length && eventsPerSecond[shard] > 0 ? eventsPerSecond[shard] : 0;

    private static int IndexOf(IReadOnlyList<int> members, int slot)
    {
        for (int m = 0; m < members.Count; m++)
        {
            if (members[m] == slot)
            {
                return m;
            }
        }

        return -1;
    }

    /// <summary>The indexes of the largest and the smallest value (the first of equals).</summary>
    private static (int Largest, int Smallest) Extremes<T>(Span<T> values) where T : System.Numerics.INumber<T>
    {
        int largest = 0, smallest = 0;
        for (int i = 1; i < values.Length; i++)
        {
            largest = values[i] > values[largest] ? i : largest;
            smallest = values[i] < values[smallest] ? i : smallest;
        }

        return (largest, smallest);
    }

    private static void SortBusiestFirst(Span<int> shards, ReadOnlySpan<double> eventsPerSecond)
    {
        // Insertion sort: at most 64 shards, and equals keep their order (the lowest shard first).
        for (int i = 1; i < shards.Length; i++)
        {
            int shard = shards[i];
            int j = i - 1;
            while (j >= 0 && Rate(eventsPerSecond, shards[j]) < Rate(eventsPerSecond, shard))
            {
                shards[j + 1] = shards[j];
                j--;
            }

            shards[j + 1] = shard;
        }
    }
}
