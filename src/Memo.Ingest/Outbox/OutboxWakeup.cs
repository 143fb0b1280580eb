using Memo.Ingest.Redis;
using Memo.Ingest.Sequencing;
using StackExchange.Redis;

namespace Memo.Ingest.Outbox;

/// <summary>
/// Who is told when the outbox changes: the sender, when a reply is queued on this instance (others find it at their
/// next poll), and the sequencers, here and on other instances (through Redis), when a change was appended to the
/// inbox, so that the reply's state reaches the stream at once rather than at the next poll.
/// </summary>
internal sealed class OutboxWakeup(Sequencer sequencer, GatewayRedis redis)
{
    private Action? _sender;

    public void Register(Action sender) => _sender = sender;

    public void WakeSender() => _sender?.Invoke();

    public void WakeSequencer()
    {
        sequencer.Wake();
        // Fire and forget: a lost wake-up only costs the other instances' sequencers one poll interval.
        redis.Commands?.Publish(redis.InboxChannel, sequencer.Origin, CommandFlags.FireAndForget);
    }
}
