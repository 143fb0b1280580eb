using System.Diagnostics;
using Memo.Ingest.Ingest;
using Xunit;

namespace Memo.Ingest.Tests;

/// <summary>When a full ingest queue is a burst to wait out, and when a sustained overload whose requests are refused at once.</summary>
public sealed class QueueCongestionTests
{
    private static readonly long Start = Stopwatch.Frequency * 1000;

    private readonly QueueCongestion _congestion = new(sustainedAfter: TimeSpan.FromSeconds(2), quietGap: TimeSpan.FromMilliseconds(500));

    private static long At(double seconds) => Start + (long)(seconds * Stopwatch.Frequency);

    [Fact]
    public void ABurstShorterThanTheThreshold_IsWaitedOut()
    {
        for (double t = 0; t <= 1.9; t += 0.1)
        {
            Assert.False(_congestion.NoteFull(At(t)));
            Assert.False(_congestion.IsSustained(At(t)));
        }
    }

    [Fact]
    public void AQueueFullWithoutAQuietGap_PastTheThreshold_IsShed_UntilItGoesQuiet()
    {
        for (double t = 0; t <= 2.0; t += 0.1)
        {
            _congestion.NoteFull(At(t));
        }

        Assert.True(_congestion.NoteFull(At(2.1)));
        Assert.True(_congestion.NoteFull(At(2.5)), "gaps shorter than the quiet gap keep the episode going");
        Assert.True(_congestion.IsSustained(At(2.9)));
        Assert.False(_congestion.IsSustained(At(3.05)), "quiet for longer than the gap");

        // Nobody found the queue full for longer than the quiet gap: the overload is over, the next fullness is a new burst.
        Assert.False(_congestion.NoteFull(At(3.1)));
        Assert.False(_congestion.NoteFull(At(3.2)));
    }

    [Fact]
    public void BurstsSeparatedByQuietGaps_AreEachWaitedOut()
    {
        for (int burst = 0; burst < 5; burst++)
        {
            double begin = burst * 2.5;
            for (double t = begin; t <= begin + 1.9; t += 0.1)
            {
                Assert.False(_congestion.NoteFull(At(t)));
            }
        }
    }
}
