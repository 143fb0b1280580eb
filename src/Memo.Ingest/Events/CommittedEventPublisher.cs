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
///
/// An instance alone on the event channel (PUBLISH answers how many subscribers received a frame, and this instance's
/// own hub is one of them) does not publish, and encodes only the events of accounts that its own sessions follow:
/// at 6,000 webhooks a second every round's frame, hundreds of kilobytes, went to Redis and straight back to the same
/// process to be dropped there (docs/PERFORMANCE.md, fifteenth session). Once a second it publishes a probe, the round's
/// frame as it is (often only the header), so an instance that starts is noticed within a second; what it missed
/// meanwhile its hub repairs from the log, as it does for any lost announcement. The probe used to carry every event of
/// its round, encoded for nobody: with 50-message webhooks a round of thousands of events, with their items, a second
/// per sequencer session (docs/PERFORMANCE.md, twenty-seventh session).
/// </summary>
internal sealed class CommittedEventPublisher(StreamHub hub, GatewayRedis redis, IngestMetrics metrics, FaultInjector faults)
{
    /// <summary>While alone, a round is published (and every event encoded) at most this often.</summary>
    private const long AloneProbeMilliseconds = 1000;

    private ArrayBufferWriter<byte> _frame = new(64 * 1024);
    private readonly StreamEventEncoder _encoder = new();
    private readonly TimeSpan _redisWait = TimeSpan.FromMilliseconds(redis.Settings.ScreenTimeoutMilliseconds);
    private int _count;
    private bool _alone;
    private long _nextProbe;
    private bool _publishing;
    private bool _probing;

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
        // Without a Redis connection no other instance can get this round's frame: only local followers count.
        bool connected = redis.Commands is not null;
        _publishing = connected && !_alone;
        _probing = connected && _alone && Environment.TickCount64 >= _nextProbe;
    }

    /// <summary>Whether this round's events can reach anyone (decided by <see cref="Begin"/>): when not, the sequencer
    /// runs a statement that does not return their items.</summary>
    public bool WantsItems => _publishing || hub.HasFollowers;

    /// <summary>Encodes the event on the sequencer's current result row, unless nobody can receive it.</summary>
    public void Add(string account, long seq, EventKind kind, NpgsqlDataReader row, StreamEventEncoder.Layout layout)
    {
        if (!_publishing && !hub.IsFollowed(account))
        {
            // A session that starts to follow the account just now finds the event in the log: its feed repairs a seq
            // it was never handed (StreamHub), as for an announcement lost on the way.
            return;
        }

        int lengthAt = EventFrame.BeginEvent(_frame, account, seq, kind);
        _encoder.Write(_frame, account, seq, kind, row, layout);
        EventFrame.EndEvent(_frame, lengthAt);
        _count++;
    }

    /// <summary>
    /// Announces the round's events; call only once they are committed. <paramref name="roundHadEvents"/>: whether the
    /// round assigned any seq (whether or not they were added here), so that only a round with events probes, as before
    /// the probe was emptied, and an idle instance stays quiet.
    /// </summary>
    public async ValueTask PublishAsync(bool roundHadEvents)
    {
        if (_count == 0 && !(_probing && roundHadEvents))
        {
            return;
        }

        EventFrame.SetCount(_frame, _count);
        // One copy per round, shared by the hub's dispatcher and the Redis client (which may still be sending it
        // when the next round reuses the frame buffer).
        byte[] frame = _frame.WrittenSpan.ToArray();
        if (_count > 0)
        {
            hub.Announce(frame);
        }

        IDatabase? connection = redis.Commands;
        if (!(_publishing || _probing) || connection is null || faults.Fires(FaultInjector.LosePublish))
        {
            return;
        }

        try
        {
            long receivers = await connection.PublishAsync(redis.EventChannel, frame).WaitAsync(_redisWait);
            // This instance's hub is one of the receivers. (While its own subscription is being made again after a
            // reconnection, one other instance reads as none: that one repairs from the log until the next probe.)
            _alone = receivers <= 1;
            _nextProbe = Environment.TickCount64 + AloneProbeMilliseconds;
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            metrics.RedisFailed(RedisOperation.RecordAndPublish);
        }
    }
}
