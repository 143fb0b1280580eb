using Memo.Ingest.Sequencing;
using Xunit;

namespace Memo.Ingest.Tests;

/// <summary>How a session's live and history lanes share its shards (<see cref="ShardTurns"/>).</summary>
public sealed class ShardTurnsTests
{
    private static ShardTurns Session(params int[] owned)
    {
        var turns = new ShardTurns();
        turns.SessionChanged(pid: 42);
        turns.SetOwned(owned);
        return turns;
    }

    [Fact]
    public async Task AClaimedShard_IsLeftOutOfLiveStatements_UntilReleased()
    {
        ShardTurns turns = Session(1, 2, 3);
        Assert.True(await turns.ClaimAsync(2));
        Assert.Equal([1, 3], turns.BeginLive());
        turns.EndLive();
        turns.Release();
        Assert.Equal([1, 2, 3], turns.BeginLive());
        turns.EndLive();
    }

    [Fact]
    public async Task AClaim_WaitsForTheLiveStatementThatHoldsItsShard()
    {
        ShardTurns turns = Session(1, 2, 3);
        Assert.Equal([1, 2, 3], turns.BeginLive());
        Task<bool> claim = turns.ClaimAsync(2);
        Assert.False(claim.IsCompleted);
        turns.EndLive();
        Assert.True(await claim.WaitAsync(TimeSpan.FromSeconds(5)));
        // Granted before the next live statement could start: that one leaves the shard out.
        Assert.Equal([1, 3], turns.BeginLive());
    }

    [Fact]
    public async Task AClaim_DoesNotWaitForALiveStatementWithoutItsShard()
    {
        ShardTurns turns = Session(1, 2, 3);
        Assert.True(await turns.ClaimAsync(3));
        turns.Release();
        Assert.Equal([1, 2, 3], turns.BeginLive());
        turns.EndLive();
        Assert.True(await turns.ClaimAsync(1));
        Assert.Equal([2, 3], turns.BeginLive());
        turns.Release();
        // The live statement in flight does not hold shard 1: the next slice takes it at once.
        Task<bool> claim = turns.ClaimAsync(1);
        Assert.True(claim.IsCompleted);
        Assert.True(await claim);
    }

    [Fact]
    public async Task AShardNotOwned_CannotBeClaimed_AndOneGivenUpWhileAClaimWaits_RefusesIt()
    {
        ShardTurns turns = Session(1, 2);
        Assert.False(await turns.ClaimAsync(7));
        Assert.Equal([1, 2], turns.BeginLive());
        Task<bool> claim = turns.ClaimAsync(2);
        turns.SessionChanged(pid: 0);
        Assert.False(await claim.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Empty(turns.Owned);
        Assert.Equal(0, turns.LivePid);
    }

    [Fact]
    public async Task GivingUpAShard_WaitsForTheSliceThatHoldsIt_AndNoNewClaimTakesIt()
    {
        ShardTurns turns = Session(1, 2, 3);
        Assert.True(await turns.ClaimAsync(2));
        Task givenUp = turns.GiveUpAsync([2, 3]);
        Assert.False(givenUp.IsCompleted);
        Assert.Equal([1], turns.Owned);
        turns.Release();
        await givenUp.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(await turns.ClaimAsync(2));
        Assert.Equal([1], turns.BeginLive());
    }

    [Fact]
    public async Task GivingUpShardsNoSliceHolds_DoesNotWait()
    {
        ShardTurns turns = Session(1, 2, 3);
        Assert.True(await turns.ClaimAsync(1));
        Assert.True(turns.GiveUpAsync([3]).IsCompleted);
        Assert.Equal([2], turns.BeginLive());
    }
}
