namespace Memo.Ingest.Testing;

/// <summary>
/// Named fault points on crash paths, for tests that must show what happens when a component fails unexpectedly
/// (as garnet's ExceptionInjectionHelper does). One instance per host, disarmed unless a test arms it through the
/// host's services; a disarmed point costs one volatile read.
/// </summary>
internal sealed class FaultInjector
{
    /// <summary>A writer, after taking a batch from the queue and before writing it.</summary>
    public const string WriterBatch = "writer.batch";

    private volatile string? _armed;
    private int _remaining;

    /// <summary>Makes the next <paramref name="times"/> hits of <paramref name="point"/> throw.</summary>
    public void Arm(string point, int times = 1)
    {
        Volatile.Write(ref _remaining, times);
        _armed = point;
    }

    public void Hit(string point)
    {
        if (_armed is not null && _armed == point)
        {
            HitArmed();
        }
    }

    private void HitArmed()
    {
        if (Interlocked.Decrement(ref _remaining) >= 0)
        {
            throw new InjectedFaultException(_armed!);
        }

        _armed = null;
    }
}
