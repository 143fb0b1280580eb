using Memo.Ingest.Sequencing;
using Xunit;

namespace Memo.Ingest.Tests;

/// <summary>The leader's shard assignment (64 shards; member slots as PostgreSQL hands them out).</summary>
public sealed class ShardAssignmentTests
{
    private const int Shards = 64;

    // The shards of the load tool's accounts PNrecv0-7 (hashtext & 63): seven of eight even.
    private static readonly int[] BenchmarkShards = [18, 28, 8, 38, 4, 55, 62, 40];

    [Fact]
    public void NobodyOwnsAnything_OneSession_TakesEveryShard()
    {
        int[] owners = Unowned();
        Assert.Equal(Shards, ShardAssignment.Balance([7], owners, new double[Shards]));
        Assert.All(owners, owner => Assert.Equal(7, owner));
    }

    [Fact]
    public void NobodyOwnsAnything_TwoSessions_SplitTheShardsEvenly()
    {
        int[] owners = Unowned();
        ShardAssignment.Balance([0, 1], owners, new double[Shards]);
        Assert.Equal(32, owners.Count(o => o == 0));
        Assert.Equal(32, owners.Count(o => o == 1));
    }

    [Fact]
    public void SecondSessionJoinsAnIdleDatabase_GetsHalfTheShards_AndOnlyThoseMove()
    {
        int[] owners = Owned(0);
        Assert.Equal(32, ShardAssignment.Balance([0, 3], owners, new double[Shards]));
        Assert.Equal(32, owners.Count(o => o == 3));
    }

    [Fact]
    public void SevenOfEightBusyAccountsOnOneSession_AreSpreadFourAndFour()
    {
        int[] owners = Modulo(2);
        double[] rates = Rates(BenchmarkShards, 3000);
        Assert.Equal(7, BenchmarkShards.Count(s => owners[s] == 0));

        ShardAssignment.Balance([0, 1], owners, rates);

        Assert.Equal(4, BenchmarkShards.Count(s => owners[s] == 0));
        Assert.Equal(4, BenchmarkShards.Count(s => owners[s] == 1));
        Assert.InRange(owners.Count(o => o == 0), 31, 33);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void BalancedAssignment_StaysPut_WhenTheRatesWobble(bool manySmallShards)
    {
        int[] busy = manySmallShards ? [.. Enumerable.Range(0, Shards)] : BenchmarkShards;
        double rate = manySmallShards ? 150 : 3000;
        int[] owners = Modulo(2);
        ShardAssignment.Balance([0, 1], owners, Rates(busy, rate));
        int[] balanced = [.. owners];
        var random = new Random(23);
        for (int second = 0; second < 200; second++)
        {
            double[] rates = Rates(busy, rate);
            foreach (int shard in busy)
            {
                rates[shard] *= 0.9 + (random.NextDouble() * 0.2);
            }

            Assert.Equal(0, ShardAssignment.Balance([0, 1], owners, rates));
        }

        Assert.Equal(balanced, owners);
    }

    [Fact]
    public void OneHotAccount_EndsUpWithoutTheOtherBusyOnes()
    {
        int[] owners = Modulo(2);
        double[] rates = Rates([2, 4, 6, 8], 500);
        rates[0] = 9000;

        ShardAssignment.Balance([0, 1], owners, rates);

        // The hot account alone sets the busiest session's load: nothing else busy shares its session.
        Assert.All(new[] { 2, 4, 6, 8 }, shard => Assert.NotEqual(owners[0], owners[shard]));
    }

    [Fact]
    public void ManySmallBusyShards_AreEvenedOut()
    {
        int[] owners = Owned(0);
        double[] rates = new double[Shards];
        Array.Fill(rates, 150);

        ShardAssignment.Balance([0, 1], owners, rates);

        Assert.Equal(32, owners.Count(o => o == 1));
    }

    [Fact]
    public void QuietDatabase_MovesNoBusyShard()
    {
        int[] owners = Modulo(2);
        // 90 events/s in all, all of them on session 0: not worth a move.
        Assert.Equal(0, ShardAssignment.Balance([0, 1], owners, Rates([0, 2, 4], 30)));
    }

    [Fact]
    public void SessionGone_ItsShardsGoToTheLeastLoaded_AndNobodyElsesMove()
    {
        int[] owners = Modulo(3);
        double[] rates = Rates(BenchmarkShards, 1000);
        int[] before = [.. owners];

        ShardAssignment.Balance([0, 2], owners, rates);

        Assert.All(owners, owner => Assert.True(owner is 0 or 2));
        for (int shard = 0; shard < Shards; shard++)
        {
            if (before[shard] != 1 && rates[shard] >= ShardAssignment.IdleEventsPerSecond)
            {
                Assert.Equal(before[shard], owners[shard]);
            }
        }
    }

    [Fact]
    public void BetweenRegularRebalances_OnlyTheShardsOfASessionThatLeft_Move()
    {
        // Session 0 holds seven of the eight busy shards and 1 the eighth: a regular rebalance would spread them. Between
        // two, only session 2's shards (gone) are placed, the least loaded session first.
        int[] owners = Modulo(2);
        for (int shard = 0; shard < Shards; shard += 8)
        {
            owners[shard] = 2;
        }

        double[] rates = Rates(BenchmarkShards, 3000);
        int[] before = [.. owners];

        int moved = ShardAssignment.PlaceOrphans([0, 1], owners, rates);

        Assert.Equal(8, moved);
        for (int shard = 0; shard < Shards; shard++)
        {
            if (before[shard] == 2)
            {
                Assert.Contains(owners[shard], (int[])[0, 1]);
            }
            else
            {
                Assert.Equal(before[shard], owners[shard]);
            }
        }

        Assert.Equal(1, owners[8]); // busy orphans to the least loaded session
        Assert.Equal(1, owners[40]);

        Assert.Equal(0, ShardAssignment.PlaceOrphans([0, 1], owners, rates));
        Assert.True(ShardAssignment.Balance([0, 1], owners, rates) > 0);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AnyInput_GivesEveryShardExactlyOneLiveSession(bool spread)
    {
        var random = new Random(5);
        for (int trial = 0; trial < 500; trial++)
        {
            int[] members = [.. Enumerable.Range(0, random.Next(1, 6)).Select(i => (i * 3) + random.Next(3))];
            int[] owners = [.. Enumerable.Range(0, Shards).Select(_ => random.Next(-1, 18))];
            double[] rates = [.. Enumerable.Range(0, Shards).Select(_ => random.Next(4) == 0 ? random.NextDouble() * 5000 : 0)];

            ShardAssignment.Balance(members, owners, rates, spread);

            Assert.All(owners, owner => Assert.Contains(owner, members));
            if (!spread)
            {
                // Gathered: every busy shard on the same session.
                Assert.True(Enumerable.Range(0, Shards).Where(s => rates[s] >= ShardAssignment.IdleEventsPerSecond).Select(s => owners[s]).Distinct().Count() <= 1);
            }

            // Applied again to its own result, the assignment is a fixed point.
            Assert.Equal(0, ShardAssignment.Balance(members, owners, rates, spread));
        }
    }

    [Fact]
    public void SessionsThatKeepUp_HaveTheBusyShardsGathered_OnTheOneThatHeldMostOfTheirLoad()
    {
        int[] owners = Modulo(2);
        double[] rates = Rates(BenchmarkShards, 3000);
        rates[55] = 4000; // the one odd busy shard, on session 1, is not enough to make it the heavier

        int moved = ShardAssignment.Balance([0, 1], owners, rates, spread: false);

        Assert.All(BenchmarkShards, shard => Assert.Equal(0, owners[shard]));
        Assert.InRange(owners.Count(o => o == 0), 32, 33);
        Assert.Equal(0, ShardAssignment.Balance([0, 1], owners, rates, spread: false));
        Assert.Equal(2, moved); // shard 55 over, and one idle shard back to even out the count
    }

    [Fact]
    public void BusyShards_AreSpreadWhileASessionIsBehind_AndGatheredOnlyOnceTheLoadHasHalved()
    {
        Assert.Equal(0, ShardAssignment.SpreadAt(sessionBehind: false, busyLoad: 20_000, spreadAt: 0));
        double spreadAt = ShardAssignment.SpreadAt(sessionBehind: true, busyLoad: 20_000, spreadAt: 0);
        Assert.Equal(20_000, spreadAt);
        // Spread, the sessions keep up: they stay spread while the load is near what one session could not take.
        Assert.Equal(20_000, ShardAssignment.SpreadAt(sessionBehind: false, busyLoad: 24_000, spreadAt));
        Assert.Equal(20_000, ShardAssignment.SpreadAt(sessionBehind: false, busyLoad: 10_001, spreadAt));
        Assert.Equal(20_000, ShardAssignment.SpreadAt(sessionBehind: true, busyLoad: 30_000, spreadAt));
        Assert.Equal(0, ShardAssignment.SpreadAt(sessionBehind: false, busyLoad: 9_999, spreadAt));
    }

    private static int[] Unowned() => [.. Enumerable.Repeat(-1, Shards)];

    private static int[] Owned(int slot) => [.. Enumerable.Repeat(slot, Shards)];

    private static int[] Modulo(int members) => [.. Enumerable.Range(0, Shards).Select(s => s % members)];

    private static double[] Rates(int[] busy, double eventsPerSecond)
    {
        double[] rates = new double[Shards];
        foreach (int shard in busy)
        {
            rates[shard] = eventsPerSecond;
        }

        return rates;
    }
}
