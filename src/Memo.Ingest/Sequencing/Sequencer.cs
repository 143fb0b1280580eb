using System.Buffers.Binary;
using Memo.Ingest.Configuration;
using Memo.Ingest.Events;
using Memo.Ingest.Observability;
using Memo.Ingest.Redis;
using Memo.Ingest.Storage;
using Memo.Ingest.Streams;
using StackExchange.Redis;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Memo.Ingest.Testing;
using Npgsql;

namespace Memo.Ingest.Sequencing;

/// <summary>
/// Runs this instance's sequencer sessions (<see cref="SequencerLoop"/>) and wakes them: at once when a writer of this
/// instance has appended to the inbox, and through the Redis channel <c>{prefix}inbox</c> when another instance has
/// (its shards may be owned here). Without Redis, records acknowledged elsewhere wait at most
/// <see cref="SequencerOptions.PollMilliseconds"/>.
///
/// It stops after the ingest pipeline (hosted services stop in reverse order of registration), so the records of the
/// last acknowledged webhooks are sequenced before the process exits.
/// </summary>
internal sealed partial class Sequencer : IHostedService, IAsyncDisposable
{
    // Records deleted from the inbox by this instance between two vacuums of it.
    private const long VacuumEveryRecords = 20_000;

    private readonly SequencerLoop[] _loops;
    private readonly WriterDataSource _dataSource;
    private readonly GatewayRedis _redis;
    private readonly byte[] _origin;
    private readonly CancellationTokenSource _stopping = new();
    private Task[] _running = [];
    private int _disposed;

    public Sequencer(WriterDataSource dataSource, DatabaseState database, IOptions<SequencerOptions> options, IngestMetrics metrics,
        StreamHub hub, GatewayRedis redis, DuplicateScreen screen, FaultInjector faults, ILogger<Sequencer> logger)
    {
        _redis = redis;
        _dataSource = dataSource;
        _origin = hub.InstanceId.ToByteArray();
        _loops = new SequencerLoop[Math.Max(0, options.Value.Loops)];
        for (int i = 0; i < _loops.Length; i++)
        {
            _loops[i] = new SequencerLoop(i, dataSource, database, options.Value, metrics, new CommittedEventPublisher(hub, redis, metrics, faults), screen, logger,
                AssignmentChanged);
        }

        metrics.ObserveSequencer(() => _loops.Sum(static l => l.OwnedShards));
        if (_loops.Length == 0)
        {
            Log.NoSequencer(logger);
        }
    }


    /// <summary>This instance's id alone: a wake-up of every shard for the other instances (its own were delivered locally).</summary>
    public RedisValue Origin => _origin;

    /// <summary>
    /// What a writer publishes to wake the other instances' sessions for records of <paramref name="shards"/>: this
    /// instance's id (its own wake-ups were delivered locally) and the mask, so that only the sessions holding one of
    /// the shards run a round (<see cref="OnWakeup"/>). Instances of versions before the mask read any payload that is
    /// not their own id as "every shard"; a payload of an id alone still means that here. An empty mask wakes no round:
    /// it asks every session to rebalance (<see cref="AssignmentChanged"/>), which versions before it ignore.
    /// </summary>
    public RedisValue WakePayload(ulong shards)
    {
        byte[] payload = new byte[_origin.Length + sizeof(ulong)];
        _origin.CopyTo(payload, 0);
        BinaryPrimitives.WriteUInt64LittleEndian(payload.AsSpan(_origin.Length), shards);
        return payload;
    }

    /// <summary>
    /// Records of any shard may have been appended (with <paramref name="history"/>, records of a backfill among them):
    /// every local session that holds shards runs a round soon.
    /// </summary>
    public void Wake(bool history = false) => Wake(history, ulong.MaxValue);

    /// <summary>
    /// Records of the shards in <paramref name="shards"/> (<see cref="AccountShard.MaskOf"/>) were appended: the local
    /// sessions that hold any of them run a round soon, and only they. A session woken for shards it does not hold runs
    /// a statement that finds nothing, at the full fixed cost of a round (docs/PERFORMANCE.md, twenty-fourth session).
    /// Returns the shards that no local session holds right now: another instance's, to wake through Redis, or moving
    /// (the session that takes a shard runs a round right after, <see cref="SequencerLoop.RunAsync"/>). A session
    /// takes a shard out of its mask before it unlocks it, so a shard held here is never another instance's yet.
    /// </summary>
    public ulong Wake(bool history, ulong shards)
    {
        ulong held = 0;
        foreach (SequencerLoop loop in _loops)
        {
            ulong owned = loop.OwnedMask;
            if ((owned & shards) != 0)
            {
                loop.Wake(history);
            }

            held |= owned;
        }

        return shards & ~held;
    }

    /// <summary>
    /// A local session (<paramref name="from"/>) changed the assignment as the leader, gave shards up, or left: the
    /// other local sessions and every other instance's rebalance now (<see cref="SequencerLoop.RequestRebalance"/>).
    /// </summary>
    private void AssignmentChanged(int from)
    {
        RequestRebalance(except: from);
        try
        {
            _redis.Commands?.Publish(_redis.InboxChannel, WakePayload(0), CommandFlags.FireAndForget);
        }
        catch (Exception e) when (e is RedisException or ObjectDisposedException)
        {
            // Not announced: the other instances follow at their next rebalance.
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _running = [.. Array.ConvertAll(_loops, loop => Task.Run(() => loop.RunAsync(_stopping.Token), CancellationToken.None)),
            Task.Run(() => VacuumInboxAsync(_stopping.Token), CancellationToken.None)];
        // After a reconnection, wake-ups published meanwhile are lost: look at the inbox now.
        _redis.Subscribe(_redis.InboxChannel, OnWakeup, () => Wake(history: true));
        return Task.CompletedTask;
    }

    /// <summary>
    /// Vacuums the inbox when this instance's sequencers have deleted enough of it. The inbox is a queue: every record
    /// is inserted and deleted within milliseconds, and its dead rows slow down the sequencer's index scan until a
    /// vacuum removes them. Autovacuum looks at a database at most once per autovacuum_naptime (a minute by default),
    /// in which a busy gateway leaves hundreds of thousands of dead rows; a VACUUM of the small live table takes
    /// milliseconds. SKIP_LOCKED: when another instance is vacuuming it, this one does not wait.
    /// </summary>
    private async Task VacuumInboxAsync(CancellationToken stopping)
    {
        long vacuumedAt = 0;
        DateTime lastVacuum = DateTime.UtcNow;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(1), stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            long sequenced = _loops.Sum(static l => l.RecordsSequenced);
            if (sequenced - vacuumedAt < VacuumEveryRecords && (sequenced == vacuumedAt || DateTime.UtcNow - lastVacuum < TimeSpan.FromSeconds(10)))
            {
                continue;
            }

            try
            {
                await using NpgsqlConnection connection = await _dataSource.OpenConnectionAsync(stopping);
                await using NpgsqlCommand vacuum = new("VACUUM (SKIP_LOCKED) inbox", connection);
                await vacuum.ExecuteNonQueryAsync(stopping);
                vacuumedAt = sequenced;
                lastVacuum = DateTime.UtcNow;
            }
            catch (Exception e) when (e is NpgsqlException or OperationCanceledException or TimeoutException)
            {
                // Autovacuum still does it eventually; try again next time.
            }
        }
    }

    private void OnWakeup(RedisChannel channel, RedisValue payload)
    {
        ReadOnlySpan<byte> bytes = ((ReadOnlyMemory<byte>)payload).Span;
        if (bytes.StartsWith(_origin))
        {
            return;
        }

        ulong shards = bytes.Length == _origin.Length + sizeof(ulong) ? BinaryPrimitives.ReadUInt64LittleEndian(bytes[_origin.Length..]) : ulong.MaxValue;
        if (shards == 0)
        {
            RequestRebalance(except: -1);
            return;
        }

        Wake(history: false, shards);
    }

    /// <summary>Every local session but <paramref name="except"/> (a loop id, or -1 for none) rebalances before its next round.</summary>
    private void RequestRebalance(int except)
    {
        foreach (SequencerLoop loop in _loops)
        {
            if (loop.Id != except)
            {
                loop.RequestRebalance();
            }
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        await Task.WhenAll(_running).WaitAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        // The container disposes this twice (as itself and as a hosted service).
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        foreach (SequencerLoop loop in _loops)
        {
            await loop.DisposeAsync();
        }

        _stopping.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 705, EventName = "NoSequencer", Level = LogLevel.Warning,
            Message = "Memo:Sequencer:Loops is 0: this instance acknowledges webhooks but sequences none; another instance must run sequencer sessions, or nothing acknowledged becomes visible.")]
        public static partial void NoSequencer(ILogger logger);
    }
}
