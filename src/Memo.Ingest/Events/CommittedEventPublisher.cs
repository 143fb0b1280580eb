using System.Buffers;
using Memo.Ingest.Observability;
using Memo.Ingest.Redis;
using Memo.Ingest.Testing;
using Memo.Redis;
using Memo.Redis.Protocol;

namespace Memo.Ingest.Events;

/// <summary>
/// Hands the events of one committed sequencer round to this instance's <see cref="EventBus"/> and publishes the same
/// frame on Redis for the other instances. One per sequencer loop (its buffers are reused round after round). Redis
/// is waited for at most the screening timeout; an event it loses is repaired by the other instances' buses from the
/// event log, so nothing here can hold the sequencer back.
/// </summary>
internal sealed class CommittedEventPublisher(EventBus bus, GatewayRedis redis, IngestMetrics metrics, FaultInjector faults) : IDisposable
{
    private readonly ArrayBufferWriter<byte> _frame = new(4096);
    private readonly RespCommandBuffer _commands = new(4096);
    private readonly TimeSpan _redisWait = TimeSpan.FromMilliseconds(redis.Settings.ScreenTimeoutMilliseconds);

    public async ValueTask PublishAsync(List<CommittedEvent> events)
    {
        if (events.Count == 0)
        {
            return;
        }

        _frame.ResetWrittenCount();
        EventFrame.WriteHeader(_frame, bus.InstanceId, events.Count);
        foreach (CommittedEvent committed in events)
        {
            EventFrame.WriteEvent(_frame, committed);
        }

        bus.DeliverLocal(_frame.WrittenSpan);
        RedisConnection? connection = redis.Commands;
        if (connection is null || !connection.IsConnected || faults.Fires(FaultInjector.LosePublish))
        {
            return;
        }

        _commands.Reset();
        _commands.Command(3).Argument("PUBLISH"u8).Argument(bus.ChannelName).Argument(_frame.WrittenSpan);
        try
        {
            await connection.ExecuteAsync(_commands).WaitAsync(_redisWait);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            metrics.RedisFailed(RedisOperation.RecordAndPublish);
        }
    }

    public void Dispose() => _commands.Dispose();
}
