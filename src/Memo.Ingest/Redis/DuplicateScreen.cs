using System.Buffers.Text;
using System.Diagnostics;
using Memo.Ingest.Observability;
using Memo.Ingest.Webhooks.Parsing;
using Memo.Redis;
using Memo.Redis.Protocol;

namespace Memo.Ingest.Redis;

/// <summary>
/// Screens retried deliveries out of a batch before it reaches PostgreSQL, and remembers what a batch committed.
///
/// The rule that makes it safe: Redis only ever learns an id after PostgreSQL has committed it
/// (<see cref="AppendRemember"/> runs after COMMIT), so a record Redis calls known is certainly stored, and skipping
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

    public DuplicateScreen(GatewayRedis redis, IngestMetrics metrics)
    {
        _redis = redis;
        _metrics = metrics;
        _timeout = TimeSpan.FromMilliseconds(redis.Settings.ScreenTimeoutMilliseconds);
        _ttlSeconds = (long)redis.Settings.DedupTtlHours * 3600;
    }

    public bool Enabled => _redis.Commands is not null;

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
    public async ValueTask<int> ScreenAsync(List<ParsedWebhook> batch, RespCommandBuffer scratch, byte[] database)
    {
        // Without a connection whose database is known, Redis' answer could be about another database.
        if (!Enabled || database.Length == 0 || !IsWorthScreening(batch))
        {
            return 0;
        }

        try
        {
            return await TryScreenAsync(batch, scratch, database);
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
                if (IsScreenable(record.Kind) && _recent.Contains(Hash(webhook.Arena, in record)))
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

    private async ValueTask<int> TryScreenAsync(List<ParsedWebhook> batch, RespCommandBuffer scratch, byte[] database)
    {
        RedisConnection? redis = _redis.Commands;
        if (redis is null || !redis.IsConnected)
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

        scratch.Reset();
        scratch.Command(1 + keys).Argument("MGET"u8);
        foreach (ParsedWebhook webhook in batch)
        {
            for (int i = 0; i < webhook.Count; i++)
            {
                if (IsScreenable(webhook[i].Kind))
                {
                    AppendKey(scratch, database, webhook.Arena, in webhook[i]);
                }
            }
        }

        RedisReply[] replies;
        long started = Stopwatch.GetTimestamp();
        try
        {
            replies = await redis.ExecuteAsync(scratch).WaitAsync(_timeout);
            _metrics.RedisScreened(Stopwatch.GetElapsedTime(started));
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            _metrics.RedisFailed(RedisOperation.Screen);
            return 0;
        }

        if (replies[0].Type != RespType.Array || replies[0].Items.Length != keys)
        {
            _metrics.RedisFailed(RedisOperation.Screen);
            return 0;
        }

        ReadOnlySpan<RedisReply> known = replies[0].Items;
        int screened = 0;
        int k = 0;
        foreach (ParsedWebhook webhook in batch)
        {
            int screenable = 0;
            int screenedHere = 0;
            for (int i = 0; i < webhook.Count; i++)
            {
                ref StagedRecord record = ref webhook[i];
                if (IsScreenable(record.Kind))
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
                if (IsScreenable(record.Kind) && !record.Screened)
                {
                    _recent.Add(Hash(webhook.Arena, in record));
                }
            }
        }
    }

    /// <summary>
    /// Appends a <c>SET key 1 EX ttl</c> for every message and status event of a committed batch that Redis did not
    /// already know, under the identity of the <paramref name="database"/> that committed it. Call only after COMMIT.
    /// Returns the number of commands appended.
    /// </summary>
    public int AppendRemember(List<ParsedWebhook> committed, RespCommandBuffer commands, byte[] database)
    {
        int appended = 0;
        if (database.Length == 0)
        {
            return appended; // which database committed it is unknown: better not to remember than to misattribute
        }

        foreach (ParsedWebhook webhook in committed)
        {
            for (int i = 0; i < webhook.Count; i++)
            {
                ref StagedRecord record = ref webhook[i];
                if (IsScreenable(record.Kind) && !record.Screened)
                {
                    commands.Command(5).Argument("SET"u8);
                    AppendKey(commands, database, webhook.Arena, in record);
                    commands.Argument("1"u8).Argument("EX"u8).Argument(_ttlSeconds);
                    appended++;
                }
            }
        }

        return appended;
    }

    private static bool IsScreenable(RecordKind kind) => kind is RecordKind.Message or RecordKind.Status;

    private static int CountScreenable(ParsedWebhook webhook)
    {
        int count = 0;
        foreach (ref readonly StagedRecord record in webhook.Records)
        {
            if (IsScreenable(record.Kind))
            {
                count++;
            }
        }

        return count;
    }

    private void AppendKey(RespCommandBuffer commands, byte[] database, Utf8Arena arena, in StagedRecord record)
    {
        ReadOnlySpan<byte> account = arena[record.Account];
        ReadOnlySpan<byte> id = arena[record.Id];
        if (record.Kind == RecordKind.Message)
        {
            commands.BeginArgument(_redis.KeyPrefix.Length + database.Length + MessageTag.Length + account.Length + 1 + id.Length)
                .Append(_redis.KeyPrefix).Append(database).Append(MessageTag).Append(account).Append(":"u8).Append(id)
                .EndArgument();
            return;
        }

        ReadOnlySpan<byte> status = arena[record.Type];
        Span<byte> timestamp = stackalloc byte[20];
        Utf8Formatter.TryFormat(record.Timestamp, timestamp, out int digits);
        commands.BeginArgument(_redis.KeyPrefix.Length + database.Length + StatusTag.Length + account.Length + 1 + id.Length + 1 + status.Length + 1 + digits)
            .Append(_redis.KeyPrefix).Append(database).Append(StatusTag).Append(account).Append(":"u8).Append(id).Append(":"u8)
            .Append(status).Append(":"u8).Append(timestamp[..digits])
            .EndArgument();
    }
}
