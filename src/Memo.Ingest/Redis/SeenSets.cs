using System.Buffers;
using System.Buffers.Text;
using Memo.Ingest.Webhooks.Parsing;
using StackExchange.Redis;

namespace Memo.Ingest.Redis;

/// <summary>
/// How committed ids are kept in Redis: one set per second of the records' own timestamps,
/// <c>{prefix}{database}seen:{timestamp}</c>, holding <c>m:{account}:{wamid}</c> for a message and
/// <c>s:{account}:{wamid}:{status}</c> for a status event. A retry repeats the timestamp of the delivery it copies, so
/// it is looked for in exactly one set.
///
/// Why sets and not a key per id: Redis 7.0 (Debian 12) has no multi-key SET with a TTL, so a key per id took a Lua
/// <c>SET … EX</c> per id, 3.3-4.0 µs of Redis each; adding the same ids to their second's set takes 0.7 µs each and
/// 42 % less memory (docs/PERFORMANCE.md, twenty-eighth session). Why a set per second: a set is freed whole when it
/// expires, on Redis' main thread (lazy freeing is off by default), so it must stay small; a second of one database's
/// traffic is at most tens of thousands of members, a few milliseconds to free. Each batch moves the expiry of the
/// sets it adds to out to the TTL, so every id is kept at least that long after it was committed.
/// </summary>
internal static class SeenSets
{
    private static ReadOnlySpan<byte> SetTag => "seen:"u8;

    private static ReadOnlySpan<byte> MessageTag => "m:"u8;

    private static ReadOnlySpan<byte> StatusTag => "s:"u8;

    /// <summary>
    /// Adds the members to their sets and sets each set's expiry. KEYS: the sets; ARGV: the TTL in seconds, then per
    /// set its member count and its members. <c>unpack</c> is bounded by Lua's C stack (8,000 values): 1,000 at a time.
    /// </summary>
    public const string RememberScript = """
        local a = 2
        for i = 1, #KEYS do
          local last = a + tonumber(ARGV[a])
          for j = a + 1, last, 1000 do
            redis.call('SADD', KEYS[i], unpack(ARGV, j, math.min(j + 999, last)))
          end
          redis.call('EXPIRE', KEYS[i], ARGV[1])
          a = last + 1
        end
        return #KEYS
        """;

    /// <summary>
    /// Answers 1 or 0 for each member, in the order given. KEYS: the sets; ARGV: per set its member count and its
    /// members.
    /// </summary>
    public const string ScreenScript = """
        local found, a = {}, 1
        for i = 1, #KEYS do
          local last = a + tonumber(ARGV[a])
          for j = a + 1, last, 1000 do
            for _, hit in ipairs(redis.call('SMISMEMBER', KEYS[i], unpack(ARGV, j, math.min(j + 999, last)))) do
              found[#found + 1] = hit
            end
          end
          a = last + 1
        end
        return found
        """;

    /// <summary>A record of a batch, by the second its set is named after.</summary>
    public readonly record struct Position(long Timestamp, int Webhook, int Record) : IComparable<Position>
    {
        /// <summary>By timestamp only: the order inside a set does not matter (answers map back through the positions).</summary>
        public int CompareTo(Position other) => Timestamp.CompareTo(other.Timestamp);
    }

    /// <summary>
    /// Sorts <paramref name="positions"/> by set and builds the script's sets and arguments for them:
    /// <paramref name="leading"/> first (when it is not null), then per set its member count and members. The members
    /// are copied into one array of the batch (the webhooks' arenas go back to their pool before Redis is written to),
    /// which the arguments slice; a screen's answers come back in the order of the sorted positions.
    /// </summary>
    public static RedisValue[] Arguments(List<ParsedWebhook> batch, Span<Position> positions, ReadOnlySpan<byte> prefix,
        ReadOnlySpan<byte> database, RedisValue leading, out RedisKey[] sets)
    {
        if (!IsSorted(positions))
        {
            positions.Sort();
        }

        int setCount = 0;
        int memberBytes = 0;
        for (int i = 0; i < positions.Length; i++)
        {
            setCount += i == 0 || positions[i].Timestamp != positions[i - 1].Timestamp ? 1 : 0;
            memberBytes += MemberLength(batch, positions[i]);
        }

        sets = new RedisKey[setCount];
        int leadingCount = leading.IsNull ? 0 : 1;
        var arguments = new RedisValue[leadingCount + setCount + positions.Length];
        if (leadingCount == 1)
        {
            arguments[0] = leading;
        }

        byte[] members = new byte[memberBytes];
        int a = leadingCount;
        int written = 0;
        int set = 0;
        for (int start = 0; start < positions.Length;)
        {
            long timestamp = positions[start].Timestamp;
            int end = start + 1;
            while (end < positions.Length && positions[end].Timestamp == timestamp)
            {
                end++;
            }

            sets[set++] = SetKey(prefix, database, timestamp);
            arguments[a++] = end - start;
            for (int i = start; i < end; i++)
            {
                int length = WriteMember(batch, positions[i], members.AsSpan(written));
                arguments[a++] = new ReadOnlyMemory<byte>(members, written, length);
                written += length;
            }

            start = end;
        }

        return arguments;
    }

    /// <summary>Usual: the records of a webhook come in the order of their timestamps.</summary>
    private static bool IsSorted(ReadOnlySpan<Position> positions)
    {
        for (int i = 1; i < positions.Length; i++)
        {
            if (positions[i].Timestamp < positions[i - 1].Timestamp)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>A rented array for a batch's positions; give it back with <see cref="Return"/>.</summary>
    public static Position[] Rent(int count) => ArrayPool<Position>.Shared.Rent(count);

    public static void Return(Position[] positions) => ArrayPool<Position>.Shared.Return(positions);

    /// <summary><c>{prefix}{database}seen:{timestamp}</c>.</summary>
    public static byte[] SetKey(ReadOnlySpan<byte> prefix, ReadOnlySpan<byte> database, long timestamp)
    {
        Span<byte> digits = stackalloc byte[20];
        Utf8Formatter.TryFormat(timestamp, digits, out int digitCount);
        byte[] key = new byte[prefix.Length + database.Length + SetTag.Length + digitCount];
        Span<byte> rest = key;
        Append(ref rest, prefix);
        Append(ref rest, database);
        Append(ref rest, SetTag);
        Append(ref rest, digits[..digitCount]);
        return key;
    }

    private static int MemberLength(List<ParsedWebhook> batch, Position position)
    {
        ParsedWebhook webhook = batch[position.Webhook];
        ref readonly StagedRecord record = ref webhook[position.Record];
        int length = MessageTag.Length + webhook.Arena[record.Account].Length + 1 + webhook.Arena[record.Id].Length;
        return record.Kind == RecordKind.Message ? length : length + 1 + webhook.Arena[record.Type].Length;
    }

    /// <summary><c>m:{account}:{wamid}</c> or <c>s:{account}:{wamid}:{status}</c>.</summary>
    private static int WriteMember(List<ParsedWebhook> batch, Position position, Span<byte> destination)
    {
        ParsedWebhook webhook = batch[position.Webhook];
        ref readonly StagedRecord record = ref webhook[position.Record];
        Span<byte> rest = destination;
        Append(ref rest, record.Kind == RecordKind.Message ? MessageTag : StatusTag);
        Append(ref rest, webhook.Arena[record.Account]);
        Append(ref rest, ":"u8);
        Append(ref rest, webhook.Arena[record.Id]);
        if (record.Kind != RecordKind.Message)
        {
            Append(ref rest, ":"u8);
            Append(ref rest, webhook.Arena[record.Type]);
        }

        return destination.Length - rest.Length;
    }

    private static void Append(ref Span<byte> destination, scoped ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(destination);
        destination = destination[bytes.Length..];
    }
}
