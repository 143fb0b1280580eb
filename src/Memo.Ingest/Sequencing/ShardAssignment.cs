namespace Memo.Ingest.Sequencing;

/// <summary>
/// Which shards a sequencer session should own: the live sessions are ranked by their member slot, and session
/// <c>rank</c> of <c>members</c> takes every shard <c>s</c> with <c>s % members == rank</c>. Every session computes the
/// same split from the same member list, so sessions do not fight over shards; while the list changes, a shard may be
/// briefly unowned (its records wait) but never owned twice (the advisory lock decides).
/// </summary>
internal static class ShardAssignment
{
    public static void For(int rank, int members, int shardCount, List<int> shards)
    {
        shards.Clear();
        if (rank < 0 || members <= 0)
        {
            return;
        }

        for (int shard = rank; shard < shardCount; shard += members)
        {
            shards.Add(shard);
        }
    }
}
