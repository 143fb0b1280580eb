namespace Memo.Ingest.Redis;

/// <summary>
/// A fixed-size, lossy memory of the message and status ids this instance appended lately: a direct-mapped table of
/// 32-bit hashes (256 KiB). It only decides whether a batch is worth a round trip to Redis (a hit means a retry is
/// probably arriving); it never drops a record, so a collision or an evicted id costs at most one screening more or
/// less. Writers share it without locks: a torn or lost update is harmless for the same reason.
/// </summary>
internal sealed class RecentIds
{
    private const int Slots = 1 << 16;

    private readonly int[] _table = new int[Slots];

    public bool Contains(int hash) => Volatile.Read(ref _table[(uint)hash % Slots]) == hash;

    public void Add(int hash) => Volatile.Write(ref _table[(uint)hash % Slots], hash);

    /// <summary>A hash that is never 0, so that an empty slot never matches.</summary>
    public static int Hash(ReadOnlySpan<byte> account, ReadOnlySpan<byte> id, ReadOnlySpan<byte> status, long timestamp)
    {
        var hash = new HashCode();
        hash.AddBytes(account);
        hash.Add(0);
        hash.AddBytes(id);
        hash.Add(0);
        hash.AddBytes(status);
        hash.Add(timestamp);
        int value = hash.ToHashCode();
        return value == 0 ? 1 : value;
    }
}
