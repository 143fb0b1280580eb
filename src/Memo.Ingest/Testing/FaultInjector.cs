namespace Memo.Ingest.Testing;

/// <summary>
/// Named fault points on crash paths, for tests that must show what happens when a component fails unexpectedly
/// (as garnet's ExceptionInjectionHelper does). One instance per host, disarmed unless a test arms it through the
/// host's services; a disarmed point costs one volatile read. A test that runs the gateway as a separate process (to
/// SIGKILL it) arms one point for the process's life with <c>Memo:Testing:ArmedFault</c>; nothing else reads it.
/// </summary>
internal sealed class FaultInjector
{
    /// <summary>The outbox sender, after marking a reply sending and before calling the Cloud API (hangs).</summary>
    public const string OutboxBeforeSend = "outbox.before_send";

    /// <summary>The outbox sender, after the Cloud API answered and before the answer is committed (hangs).</summary>
    public const string OutboxBeforeCommit = "outbox.before_commit";

    /// <summary>A writer, after taking a batch from the queue and before writing it (throws).</summary>
    public const string WriterBatch = "writer.batch";

    /// <summary>A sequencer's events are not published on Redis, as if the PUBLISH were lost (<see cref="Fires"/>).</summary>
    public const string LosePublish = "publisher.lose";

    /// <summary>The stream hub's dispatcher, before it hands a frame's events to the feeds (throws).</summary>
    public const string FanOut = "hub.fan_out";

    /// <summary>The stream hub's repair, before it reads missed events from the log (throws).</summary>
    public const string RepairRead = "hub.repair_read";

    /// <summary>A writer, before appending a batch that carries history, stalls for 5 s (a slow backfill chunk).</summary>
    public const string HistoryBatchStall = "writer.history_stall";

    private volatile string? _armed;
    private int _remaining;

    public FaultInjector()
    {
    }

    public FaultInjector(IConfiguration configuration)
    {
        if (configuration["Memo:Testing:ArmedFault"] is { Length: > 0 } point)
        {
            Arm(point, int.MaxValue);
        }
    }

    /// <summary>Makes the next <paramref name="times"/> hits of <paramref name="point"/> throw.</summary>
    public void Arm(string point, int times = 1)
    {
        Volatile.Write(ref _remaining, times);
        _armed = point;
    }

    /// <summary>Throws when <paramref name="point"/> is armed.</summary>
    public void Hit(string point)
    {
        if (Fires(point))
        {
            throw new InjectedFaultException(point);
        }
    }

    /// <summary>Never returns when <paramref name="point"/> is armed: the process is caught mid-way, to be killed.</summary>
    public Task HangIfArmedAsync(string point, CancellationToken cancellationToken) =>
        Fires(point) ? Task.Delay(Timeout.Infinite, cancellationToken) : Task.CompletedTask;

    /// <summary>Whether <paramref name="point"/> is armed, without counting a hit: for a check that costs more than this.</summary>
    public bool IsArmed(string point) => _armed is not null && _armed == point;

    /// <summary>True (and counted) when <paramref name="point"/> is armed: for faults that are not exceptions.</summary>
    public bool Fires(string point) => _armed is not null && _armed == point && Consume();

    private bool Consume()
    {
        if (Interlocked.Decrement(ref _remaining) >= 0)
        {
            return true;
        }

        _armed = null;
        return false;
    }
}
