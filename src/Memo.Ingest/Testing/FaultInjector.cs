namespace Memo.Ingest.Testing;

/// <summary>
/// Named fault points on crash paths, for tests that must show what happens when a component fails unexpectedly
/// (as garnet's ExceptionInjectionHelper does). One instance per host, disarmed unless a test arms it through the
/// host's services; a disarmed point costs one volatile read.
/// </summary>
internal sealed class FaultInjector
{
    /// <summary>A writer, after taking a batch from the queue and before writing it (throws).</summary>
    public const string WriterBatch = "writer.batch";

    /// <summary>A sequencer's events are not published on Redis, as if the PUBLISH were lost (<see cref="Fires"/>).</summary>
    public const string LosePublish = "publisher.lose";

    /// <summary>The stream hub's dispatcher, before it hands a frame's events to the feeds (throws).</summary>
    public const string FanOut = "hub.fan_out";

    /// <summary>The stream hub's repair, before it reads missed events from the log (throws).</summary>
    public const string RepairRead = "hub.repair_read";

    private volatile string? _armed;
    private int _remaining;

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
