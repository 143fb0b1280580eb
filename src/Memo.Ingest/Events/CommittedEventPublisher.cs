using System.Buffers;
using Memo.Ingest.Ingest;
using Memo.Ingest.Observability;
using Memo.Ingest.Redis;
using Memo.Ingest.Streams;
using Memo.Ingest.Testing;
using Npgsql;
using StackExchange.Redis;

namespace Memo.Ingest.Events;

/// <summary>
/// Announces the events of one committed sequencer round: while the sequencer reads its statement's result, each event
/// is encoded once, as clients will receive it, into one <see cref="EventFrame"/>; after the commit the frame goes to
/// this instance's <see cref="StreamHub"/> and, with one PUBLISH, to every other instance's. One per sequencer loop
/// (its buffers are reused round after round). Redis is waited for at most the screening timeout; an announcement it
/// loses is repaired by the other instances' hubs from the event log, so nothing here can hold the sequencer back.
/// </summary>
internal sealed class CommittedEventPublisher(StreamHub hub, GatewayRedis redis, IngestMetrics metrics, FaultInjector faults)
{
    private ArrayBufferWriter<byte> _frame = new(64 * 1024);
    private readonly StreamEventEncoder _encoder = new();
    private readonly TimeSpan _redisWait = TimeSpan.FromMilliseconds(redis.Settings.ScreenTimeoutMilliseconds);
    private int _count;

    /// <summary>Starts a new round's frame (whatever an unfinished round added is dropped).</summary>
    public void Begin()
    {
        if (_frame.Capacity > 4 * 1024 * 1024)
        {
            // One huge round (a history backfill) should not pin its buffer for the life of the process.
            _frame = new ArrayBufferWriter<byte>(64 * 1024);
        }

        _frame.ResetWrittenCount();
        EventFrame.WriteHeader(_frame, hub.InstanceId);
        _count = 0;
    }

    /// <summary>Encodes the event on the sequencer's current result row.</summary>
    public void Add(string account, long seq, EventKind kind, NpgsqlDataReader row, StreamEventEncoder.Layout layout)
    {
        int lengthAt = EventFrame.BeginEvent(_frame, account, seq, kind);
        _encoder.Write(_frame, account, seq, kind, row, layout);
        EventFrame.EndEvent(_frame, lengthAt);
        _count++;
    }

    /// <summary>Announces the round's events; call only once they are committed.</summary>
    public async ValueTask PublishAsync()
    {
        if (_count == 0)
        {
            return;
        }

        EventFrame.SetCount(_frame, _count);
        // One copy per round, shared by the hub's dispatcher and the Redis client (which may still be sending it
        // when the next round reuses the frame buffer).
        byte[] frame = _frame.WrittenSpan.ToArray();
        hub.Announce(frame);
        IDatabase? connection = redis.Commands;
        if (connection is null || faults.Fires(FaultInjector.LosePublish))
        {
            return;
        }

        try
        {
            await connection.PublishAsync(redis.EventChannel, frame).WaitAsync(_redisWait);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            metrics.RedisFailed(RedisOperation.RecordAndPublish);
        }
    }
}
