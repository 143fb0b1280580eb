using System.Buffers.Binary;
using System.Numerics;

namespace Memo.Ingest.Sequencing;

/// <summary>
/// The shard of an account as PostgreSQL computes it for <c>inbox.shard</c> (migration 0003: <c>hashtext(account) &amp; 63</c>),
/// computed here from the account's UTF-8 bytes so that a writer can wake only the sequencer session that holds the
/// shard of what it appended (<see cref="Sequencer.Wake(bool, ulong)"/>). <c>hashtext</c> of a text under a
/// deterministic collation hashes its bytes with PostgreSQL's <c>hash_bytes</c>, Bob Jenkins' lookup3 on little-endian
/// words; <c>ShardHashTests</c> compares this with PostgreSQL's own result for a thousand strings. Only a wake-up
/// depends on it: were they ever to differ, a record would wait for the session's poll, never be lost or misnumbered.
/// </summary>
internal static class AccountShard
{
    /// <summary>The shard of the account whose UTF-8 bytes are <paramref name="account"/>: 0 to <see cref="SequencerSql.ShardCount"/> − 1.</summary>
    public static int Of(ReadOnlySpan<byte> account) => (int)(HashText(account) & (SequencerSql.ShardCount - 1));

    /// <summary>The bit of <paramref name="account"/>'s shard in a mask of shards.</summary>
    public static ulong MaskOf(ReadOnlySpan<byte> account) => 1UL << Of(account);

    /// <summary>PostgreSQL's <c>hashtext</c> of a text with these bytes, as an unsigned value.</summary>
    public static uint HashText(ReadOnlySpan<byte> key)
    {
        uint a, b, c;
        a = b = c = 0x9e3779b9u + (uint)key.Length + 3923095u;
        while (key.Length >= 12)
        {
            a += BinaryPrimitives.ReadUInt32LittleEndian(key);
            b += BinaryPrimitives.ReadUInt32LittleEndian(key[4..]);
            c += BinaryPrimitives.ReadUInt32LittleEndian(key[8..]);
            Mix(ref a, ref b, ref c);
            key = key[12..];
        }

        // The last 0-11 bytes as little-endian words, except that c's lowest byte is left out (lookup3 keeps it for the
        // length), so its bytes go in from the second one up.
        if (key.Length >= 8)
        {
            a += BinaryPrimitives.ReadUInt32LittleEndian(key);
            b += BinaryPrimitives.ReadUInt32LittleEndian(key[4..]);
            for (int i = 8; i < key.Length; i++)
            {
                c += (uint)key[i] << (8 * (i - 7));
            }
        }
        else if (key.Length >= 4)
        {
            a += BinaryPrimitives.ReadUInt32LittleEndian(key);
            for (int i = 4; i < key.Length; i++)
            {
                b += (uint)key[i] << (8 * (i - 4));
            }
        }
        else
        {
            for (int i = 0; i < key.Length; i++)
            {
                a += (uint)key[i] << (8 * i);
            }
        }

        Final(ref a, ref b, ref c);
        return c;
    }

    private static void Mix(ref uint a, ref uint b, ref uint c)
    {
        a -= c; a ^= BitOperations.RotateLeft(c, 4); c += b;
        b -= a; b ^= BitOperations.RotateLeft(a, 6); a += c;
        c -= b; c ^= BitOperations.RotateLeft(b, 8); b += a;
        a -= c; a ^= BitOperations.RotateLeft(c, 16); c += b;
        b -= a; b ^= BitOperations.RotateLeft(a, 19); a += c;
        c -= b; c ^= BitOperations.RotateLeft(b, 4); b += a;
    }

    private static void Final(ref uint a, ref uint b, ref uint c)
    {
        c ^= b; c -= BitOperations.RotateLeft(b, 14);
        a ^= c; a -= BitOperations.RotateLeft(c, 11);
        b ^= a; b -= BitOperations.RotateLeft(a, 25);
        c ^= b; c -= BitOperations.RotateLeft(b, 16);
        a ^= c; a -= BitOperations.RotateLeft(c, 4);
        b ^= a; b -= BitOperations.RotateLeft(a, 14);
        c ^= b; c -= BitOperations.RotateLeft(b, 24);
    }
}
