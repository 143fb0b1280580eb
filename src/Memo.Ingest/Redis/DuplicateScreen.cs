using System.Buffers.Text;
using System.Diagnostics;
using Memo.Ingest.Observability;
using Memo.Ingest.Webhooks.Parsing;
using StackExchange.Redis;

namespace Memo.Ingest.Redis;

/// <summary>
/// Screens retried deliveries out of a batch before it reaches PostgreSQL, and remembers what a batch committed.
///
/// The rule that makes it safe: Redis only ever learns an id after PostgreSQL has committed it
/// (<see cref="KeysToRemember"/> runs after COMMIT), so a record Redis calls known is certainly stored, and skipping
/// it loses nothing. Anything Redis misses (expired, evicted, down, slow) is written and PostgreSQL's unique keys
/// reject it there. Keys: <c>{prefix}{database}seen:m:{account}:{wamid}</c> for messages and
/// <c>{prefix}{database}seen:s:{account}:{wamid}:{status}:{timestamp}</c> for status events, where <c>{database}</c> is
/// the identity of the database the writer's connection commits to (<see cref="Storage.DatabaseIdentity"/>): what
/// Redis learnt from one database is never trusted for another, nor for the same one restored from a backup.
/// </summary>
internal sealed class DuplicateScreen
{
    private static ReadOnlySpan<byte> MessageTag => "seen:m:"u8;

    private static ReadOnlySpan<byte> StatusTag => "seen:s:"u8;

    private readonly GatewayRedis _redis;
    private readonly IngestMetrics _metrics;
    private readonly TimeSpan _timeout;
    private readonly long _ttlSeconds;
    private readonly RedisValue[] _ttlArgument;

    public DuplicateScreen(GatewayRedis redis, IngestMetrics metrics)
    {
        _redis = redis;
        _metrics = metrics;
        _timeout = TimeSpan.FromMilliseconds(redis.Settings.ScreenTimeoutMilliseconds);
        _ttlSeconds = (long)redis.Settings.DedupTtlHours * 3600;
        _ttlArgument = [_ttlSeconds];
    }

    public bool Enabled => _redis.IsConfigured;

    /// <summary>
    /// Asks Redis, in one round trip, which of the batch's messages and status events are already committed, and
    /// marks them <see cref="StagedRecord.Screened"/>. Waits at most the screen timeout; on any failure nothing is
    /// screened. Returns how many records were screened.
    ///
    /// The round trip is only made when it is likely to pay: an appended duplicate costs the write path about 25 µs of
    /// PostgreSQL (its inbox row and the sequencer's probe), while a screen costs every batch a round trip to Redis,
    /// which in normal traffic (no retries) took a third of the throughput of closed-loop senders
    /// (docs/PERFORMANCE.md). So a batch is screened while retries are arriving: one of its ids was appended by this
    /// instance lately (<see cref="RecentIds"/>), or a screen or the sequencers found duplicates in the last
    /// <see cref="StormSeconds"/> seconds. One batch in <see cref="SampleEvery"/> is screened anyway, so that retries
    /// of ids appended by another instance are noticed too.
    /// </summary>
    public async ValueTask<int> ScreenAsync(List<ParsedWebhook> batch, byte[] database)
    {
        // Without a connection whose database is known, Redis' answer could be about another database.
        if (!Enabled || database.Length == 0 || !IsWorthScreening(batch))
        {
            return 0;
        }

        try
        {
            return await TryScreenAsync(batch, database);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Screening is an optimisation: whatever goes wrong, the batch is written unscreened.
            _metrics.RedisFailed(RedisOperation.Screen);
            return 0;
        }
    }

    /// <summary>How long screening stays on after duplicates were seen.</summary>
    public const int StormSeconds = 2;

    /// <summary>Outside a storm, one batch in this many is screened.</summary>
    public const int SampleEvery = 16;

    private readonly RecentIds _recent = new();
    private long _stormUntil;
    private int _sinceSample;

    /// <summary>Duplicates got past the screen (the sequencers dropped them): screen every batch for a while.</summary>
    public void DuplicatesBehindScreen(int count)
    {
        if (count > 0)
        {
            StartStorm();
        }
    }

    private void StartStorm() => Volatile.Write(ref _stormUntil, Stopwatch.GetTimestamp() + (StormSeconds * Stopwatch.Frequency));

    private bool IsWorthScreening(List<ParsedWebhook> batch)
    {
        if (Stopwatch.GetTimestamp() < Volatile.Read(ref _stormUntil))
        {
            return true;
        }

        foreach (ParsedWebhook webhook in batch)
        {
            foreach (ref readonly StagedRecord record in webhook.Records)
            {
                if (IsScreenable(in record) && _recent.Contains(Hash(webhook.Arena, in record)))
                {
                    StartStorm();
                    return true;
                }
            }
        }

        if (Interlocked.Increment(ref _sinceSample) >= SampleEvery)
        {
            Volatile.Write(ref _sinceSample, 0);
            return true;
        }

        return false;
    }

    private static int Hash(Utf8Arena arena, in StagedRecord record) => RecentIds.Hash(arena[record.Account], arena[record.Id],
        record.Kind == RecordKind.Status ? arena[record.Type] : default, record.Kind == RecordKind.Status ? record.Timestamp : 0);

    private async ValueTask<int> TryScreenAsync(List<ParsedWebhook> batch, byte[] database)
    {
        IDatabase? redis = _redis.Commands;
        if (redis is null)
        {
            return 0;
        }

        int keys = 0;
        foreach (ParsedWebhook webhook in batch)
        {
            keys += CountScreenable(webhook);
        }

        if (keys == 0)
        {
            return 0;
        }

        // One key array and one key per record: screening runs only while retries arrive (IsWorthScreening).
        var asked = new RedisKey[keys];
        int k = 0;
        foreach (ParsedWebhook webhook in batch)
        {
            for (int i = 0; i < webhook.Count; i++)
            {
                if (IsScreenable(in webhook[i]))
                {
                    asked[k++] = Key(database, webhook.Arena, in webhook[i]);
                }
            }
        }

        RedisValue[] known;
        long started = Stopwatch.GetTimestamp();
        try
        {
            known = await redis.StringGetAsync(asked).WaitAsync(_timeout);
            _metrics.RedisScreened(Stopwatch.GetElapsedTime(started));
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            _metrics.RedisFailed(RedisOperation.Screen);
            return 0;
        }

        if (known.Length != keys)
        {
            _metrics.RedisFailed(RedisOperation.Screen);
            return 0;
        }

        int screened = 0;
        k = 0;
        foreach (ParsedWebhook webhook in batch)
        {
            int screenable = 0;
            int screenedHere = 0;
            for (int i = 0; i < webhook.Count; i++)
            {
                ref StagedRecord record = ref webhook[i];
                if (IsScreenable(in record))
                {
                    screenable++;
                    if (!known[k++].IsNull)
                    {
                        record.Screened = true;
                        screenedHere++;
                    }
                }
            }

            // The contacts of a webhook whose every message and status is known came with those same deliveries,
            // which were committed together with them: they are retries too.
            if (screenable > 0 && screenedHere == screenable)
            {
                for (int i = 0; i < webhook.Count; i++)
                {
                    if (webhook[i].Kind == RecordKind.Contact)
                    {
                        webhook[i].Screened = true;
                    }
                }
            }

            screened += screenedHere;
        }

        if (screened > 0)
        {
            StartStorm();
        }

        return screened;
    }

    /// <summary>
    /// Notes the ids of an appended batch in this instance's <see cref="RecentIds"/>, so that their retries turn the
    /// screen on. Call only after COMMIT.
    /// </summary>
    public void NoteAppended(List<ParsedWebhook> committed)
    {
        foreach (ParsedWebhook webhook in committed)
        {
            foreach (ref readonly StagedRecord record in webhook.Records)
            {
                if (IsScreenable(in record) && !record.Screened)
                {
                    _recent.Add(Hash(webhook.Arena, in record));
                }
            }
        }
    }

    /// <summary>
    /// The keys to remember for a committed batch: every message and status event that Redis did not already know,
    /// under the identity of the <paramref name="database"/> that committed it (empty when that is unknown: better
    /// not to remember than to misattribute). Call only after COMMIT.
    /// </summary>
    internal RedisKey[] KeysToRemember(List<ParsedWebhook> committed, byte[] database)
    {
        int count = 0;
        if (database.Length > 0)
        {
            foreach (ParsedWebhook webhook in committed)
            {
                foreach (ref readonly StagedRecord record in webhook.Records)
                {
                    count += IsScreenable(in record) && !record.Screened ? 1 : 0;
                }
            }
        }

        if (count == 0)
        {
            return [];
        }

        var keys = new RedisKey[count];
        int k = 0;
        foreach (ParsedWebhook webhook in committed)
        {
            foreach (ref readonly StagedRecord record in webhook.Records)
            {
                if (IsScreenable(in record) && !record.Screened)
                {
                    keys[k++] = Key(database, webhook.Arena, in record);
                }
            }
        }

        return keys;
    }

    /// <summary>
    /// Remembers the keys of a committed batch, each for the TTL, in one command: a script of SETs, one round trip and
    /// one reply to observe whatever the batch size (a pipeline of SETs would cost the client a message and a task per
    /// id). Null when there is nothing to remember or Redis is not connected. Call only after COMMIT.
    /// </summary>
    public Task? RememberAsync(List<ParsedWebhook> committed, byte[] database)
    {
        IDatabase? redis = _redis.Commands;
        if (redis is null)
        {
            return null;
        }

        RedisKey[] keys = KeysToRemember(committed, database);
        return keys.Length == 0 ? null : redis.ScriptEvaluateAsync(RememberScript, keys, _ttlArgument);
    }

    private const string RememberScript = "for i = 1, #KEYS do redis.call('SET', KEYS[i], '1', 'EX', ARGV[1]) end return #KEYS";

    /// <summary>
    /// Messages and status events, except history: a backfill's copies are rare (a chunk Meta delivers again) and the
    /// sequencer drops them anyway, while remembering its records would cost Redis and the gateway a key per message of
    /// the largest burst there is, taking CPU from the live traffic beside it (docs/PERFORMANCE.md, issue 16).
    /// </summary>
    private static bool IsScreenable(in StagedRecord record) =>
        record.Kind == RecordKind.Status || (record.Kind == RecordKind.Message && record.Origin != MessageOrigin.History);

    private static int CountScreenable(ParsedWebhook webhook)
    {
        int count = 0;
        foreach (ref readonly StagedRecord record in webhook.Records)
        {
            if (IsScreenable(in record))
            {
                count++;
            }
        }

        return count;
    }

    /// <summary>
    /// <c>{prefix}{database}seen:m:{account}:{wamid}</c> or <c>{prefix}{database}seen:s:{account}:{wamid}:{status}:{timestamp}</c>,
    /// built in one array: StackExchange.Redis takes keys as byte arrays or strings, and a byte array skips the UTF-16
    /// round trip.
    /// </summary>
    private byte[] Key(byte[] database, Utf8Arena arena, in StagedRecord record)
    {
        ReadOnlySpan<byte> account = arena[record.Account];
        ReadOnlySpan<byte> id = arena[record.Id];
        ReadOnlySpan<byte> tag = record.Kind == RecordKind.Message ? MessageTag : StatusTag;
        ReadOnlySpan<byte> status = record.Kind == RecordKind.Message ? default : arena[record.Type];
        Span<byte> timestamp = stackalloc byte[20];
        int digits = 0;
        if (record.Kind != RecordKind.Message)
        {
            Utf8Formatter.TryFormat(record.Timestamp, timestamp, out digits);
        }

        int length = _redis.KeyPrefix.Length + database.Length + tag.Length + account.Length + 1 + id.Length
            + (record.Kind == RecordKind.Message ? 0 : 1 + status.Length + 1 + digits);
        byte[] key = new byte[length];
        var writer = new SpanWriter(key);
        writer.Write(_redis.KeyPrefix);
        writer.Write(database);
        writer.Write(tag);
        writer.Write(account);
        writer.Write(":"u8);
        writer.Write(id);
        if (record.Kind != RecordKind.Message)
        {
            writer.Write(":"u8);
            writer.Write(status);
            writer.Write(":"u8);
            writer.Write(timestamp[..digits]);
        }

        return key;
    }

    private ref struct SpanWriter(Span<byte> destination)
    {
        private readonly Span<byte> _destination = destination;
        private int _written;

        public void Write(scoped ReadOnlySpan<byte> bytes)
        {
            bytes.CopyTo(_destination[_written..]);
            _written += bytes.Length;
        }
    }
}
