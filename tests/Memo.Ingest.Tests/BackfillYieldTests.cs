using Memo.Ingest.Sequencing;
using Xunit;

namespace Memo.Ingest.Tests;

/// <summary>When history statements wait for a backfill being acknowledged (times in arbitrary ticks).</summary>
public sealed class BackfillYieldTests
{
    private static BackfillYield Yield() => new(burstGap: 50, longestYield: 2000);

    [Fact]
    public void NoAppend_HistoryNeverWaits()
    {
        BackfillYield yield = Yield();
        Assert.False(yield.ShouldWait(0));
        Assert.False(yield.ShouldWait(1_000_000));
    }

    [Fact]
    public void WhileAppendsArriveBackToBack_HistoryWaits_ThenRunsAsSoonAsTheyStop()
    {
        BackfillYield yield = Yield();
        yield.Appended(1000);
        Assert.True(yield.ShouldWait(1010));
        yield.Appended(1040);
        Assert.True(yield.ShouldWait(1080));
        Assert.False(yield.ShouldWait(1090)); // 50 after the last append: the burst is over
    }

    [Fact]
    public void AnEndlessBurst_StillLetsOneStatementThroughPerLongestYield()
    {
        BackfillYield yield = Yield();
        int ran = 0;
        for (long now = 0; now < 10_000; now += 10)
        {
            yield.Appended(now);
            ran += yield.ShouldWait(now + 1) ? 0 : 1;
        }

        Assert.Equal(4, ran); // at 2,000, 4,000, 6,000 and 8,000
    }

    [Fact]
    public void ASecondBurst_WaitsAfresh()
    {
        BackfillYield yield = Yield();
        yield.Appended(0);
        Assert.True(yield.ShouldWait(10));
        Assert.False(yield.ShouldWait(500));
        yield.Appended(1900);
        Assert.True(yield.ShouldWait(1910)); // not let through at 2,000 after the first burst's start
        Assert.True(yield.ShouldWait(1940));
    }
}
