using System.Diagnostics;
using Memo.Ingest.Observability;
using Memo.Ingest.Webhooks.Parsing;
using StackExchange.Redis;

namespace Memo.Ingest.Redis;

/// <summary>
/// Screens retried deliveries out of a batch before it reaches PostgreSQL, and remembers what a batch committed.
///
/// The rule that makes it safe: Redis only ever learns an id after PostgreSQL has committed it
/// (<see cref="RememberAsync"/> runs after COMMIT), so a record Redis calls known is certainly stored, and skipping
/// it loses nothing. Anything Redis misses (expired, evicted, down, slow) is written and PostgreSQL's unique keys
/// reject it there. The ids are kept in one set per second of the records' timestamps (<see cref="SeenSets"/>), under
/// the identity of the database the writer's connection commits to (<see cref="Storage.DatabaseIdentity"/>): what
/// Redis learnt from one database is never trusted for another, nor for the same one restored from a backup.
/// </summary>
internal sealed class DuplicateScreen
{
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

        int count = CountScreenable(batch);
        if (count == 0)
        {
            return 0;
        }

        SeenSets.Position[] positions = SeenSets.Rent(count);
        try
        {
            CollectScreenable(batch, positions);
            // Sorted by set: the answers come back in this order.
            RedisValue[] arguments = SeenSets.Arguments(batch, positions.AsSpan(0, count), _redis.KeyPrefix, database,
                RedisValue.Null, out RedisKey[] sets);
            long[]? known;
            long started = Stopwatch.GetTimestamp();
            try
            {
                known = (long[]?)await redis.ScriptEvaluateAsync(SeenSets.ScreenScript, sets, arguments).WaitAsync(_timeout);
                _metrics.RedisScreened(Stopwatch.GetElapsedTime(started));
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                _metrics.RedisFailed(RedisOperation.Screen);
                return 0;
            }

            if (known is null || known.Length != count)
            {
                _metrics.RedisFailed(RedisOperation.Screen);
                return 0;
            }

            for (int i = 0; i < count; i++)
            {
                if (known[i] == 1)
                {
                    batch[positions[i].Webhook][positions[i].Record].Screened = true;
                }
            }
        }
        finally
        {
            SeenSets.Return(positions);
        }

        int screened = 0;
        foreach (ParsedWebhook webhook in batch)
        {
            int screenable = 0;
            int screenedHere = 0;
            foreach (ref readonly StagedRecord record in webhook.Records)
            {
                screenable += IsScreenable(in record) ? 1 : 0;
                screenedHere += IsScreenable(in record) && record.Screened ? 1 : 0;
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
    /// Remembers the committed batch's messages and status events that Redis did not already know, for the TTL, in
    /// one script (<see cref="SeenSets"/>): one round trip and one reply to observe whatever the batch size (a pipeline
    /// would cost the client a message and a task per set). The ids go under the identity of the
    /// <paramref name="database"/> that committed them; nothing is remembered when it is unknown (better not to
    /// remember than to misattribute). Null when there is nothing to remember or Redis is not connected. Call only
    /// after COMMIT.
    /// </summary>
    public Task? RememberAsync(List<ParsedWebhook> committed, byte[] database)
    {
        IDatabase? redis = _redis.Commands;
        if (redis is null || database.Length == 0)
        {
            return null;
        }

        int count = CountScreenable(committed);
        if (count == 0)
        {
            return null;
        }

        SeenSets.Position[] positions = SeenSets.Rent(count);
        try
        {
            CollectScreenable(committed, positions);
            RedisValue[] arguments = SeenSets.Arguments(committed, positions.AsSpan(0, count), _redis.KeyPrefix, database,
                _ttlSeconds, out RedisKey[] sets);
            return redis.ScriptEvaluateAsync(SeenSets.RememberScript, sets, arguments);
        }
        finally
        {
            SeenSets.Return(positions);
        }
    }

    /// <summary>
    /// Messages and status events, except history: a backfill's copies are rare (a chunk Meta delivers again) and the
    /// sequencer drops them anyway, while remembering its records would cost Redis and the gateway a key per message of
    /// the largest burst there is, taking CPU from the live traffic beside it (docs/PERFORMANCE.md, issue 16).
    /// </summary>
    private static bool IsScreenable(in StagedRecord record) =>
        record.Kind == RecordKind.Status || (record.Kind == RecordKind.Message && record.Origin != MessageOrigin.History);

    /// <summary>Messages and status events of the batch that are not screened out yet.</summary>
    private static int CountScreenable(List<ParsedWebhook> batch)
    {
        int count = 0;
        foreach (ParsedWebhook webhook in batch)
        {
            foreach (ref readonly StagedRecord record in webhook.Records)
            {
                count += IsScreenable(in record) && !record.Screened ? 1 : 0;
            }
        }

        return count;
    }

    private static void CollectScreenable(List<ParsedWebhook> batch, SeenSets.Position[] positions)
    {
        int count = 0;
        for (int w = 0; w < batch.Count; w++)
        {
            ReadOnlySpan<StagedRecord> records = batch[w].Records;
            for (int r = 0; r < records.Length; r++)
            {
                if (IsScreenable(in records[r]) && !records[r].Screened)
                {
                    positions[count++] = new SeenSets.Position(records[r].Timestamp, w, r);
                }
            }
        }
    }
}
