using Memo.Ingest.Ingest;
using Memo.Ingest.Streams;
using Xunit;

namespace Memo.Ingest.Tests;

/// <summary>The one place where the live path closes gaps: a feed hands on the next seq and nothing else.</summary>
public sealed class AccountFeedTests
{
    [Fact]
    public void Contiguous_events_are_handed_on_and_repeats_skipped()
    {
        var feed = new AccountFeed("PN1", deliveredUpTo: 5);

        Assert.False(feed.Accept(Events(4, 5, 6, 7)));

        Assert.Equal(7, feed.DeliveredUpTo);
        Assert.False(feed.Repairing);
    }

    [Fact]
    public void An_event_past_the_next_seq_starts_a_repair_that_newer_events_only_extend()
    {
        var feed = new AccountFeed("PN1", deliveredUpTo: 5);

        Assert.True(feed.Accept(Events(6, 8)));
        Assert.Equal(6, feed.DeliveredUpTo); // the run before the gap still goes out
        Assert.True(feed.Repairing);
        Assert.Equal(8, feed.RepairUpTo);

        Assert.False(feed.Accept(Events(9, 10)));
        Assert.Equal(6, feed.DeliveredUpTo);
        Assert.Equal(10, feed.RepairUpTo);
        Assert.False(feed.TryEndRepair());

        Assert.Equal(3, feed.AcceptRepaired(Events(6, 7, 8, 9)));
        Assert.False(feed.TryEndRepair());
        Assert.Equal(1, feed.AcceptRepaired(Events(10)));
        Assert.True(feed.TryEndRepair());
        Assert.Equal(10, feed.DeliveredUpTo);

        // After the repair, the late announcement of what it read is a repeat.
        Assert.False(feed.Accept(Events(7, 8, 11)));
        Assert.Equal(11, feed.DeliveredUpTo);
    }

    [Fact]
    public void A_sweep_repairs_only_what_was_committed_a_whole_interval_ago_unless_announcements_were_missed()
    {
        var feed = new AccountFeed("PN1", deliveredUpTo: 5);

        Assert.False(feed.ObserveCommitted(9, missedAnnouncements: false)); // maybe still in flight
        Assert.False(feed.Accept(Events(6, 7)));
        Assert.True(feed.ObserveCommitted(9, missedAnnouncements: false)); // 8 and 9 never came
        Assert.Equal(9, feed.RepairUpTo);

        var other = new AccountFeed("PN2", deliveredUpTo: 5);
        Assert.True(other.ObserveCommitted(6, missedAnnouncements: true));
    }

    private static List<StreamEvent> Events(params long[] seqs) =>
        [.. seqs.Select(static seq => new StreamEvent("PN1", seq, EventKind.MessageCreated, [(byte)'{', (byte)'}']))];
}
