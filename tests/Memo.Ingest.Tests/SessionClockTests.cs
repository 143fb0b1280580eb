using System.Diagnostics.Metrics;
using Memo.Ingest.Configuration;
using Memo.Ingest.Observability;
using Memo.Ingest.Streams;
using Memo.Ingest.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace Memo.Ingest.Tests;

/// <summary>
/// The one timer of all stream sessions: it must end a session whose token expired (no session has a timer of its
/// own any more), and leave alone the sessions whose token is valid and those no longer on it.
/// </summary>
public sealed class SessionClockTests
{
    [Fact]
    public async Task A_session_whose_token_expired_is_ended_by_the_clock_and_the_others_are_left_alone()
    {
        await using var clock = new SessionClock(TimeSpan.FromSeconds(1));
        StreamSession expiring = Session(DateTimeOffset.UtcNow.AddMilliseconds(300));
        StreamSession valid = Session(DateTimeOffset.UtcNow.AddHours(1));
        StreamSession removed = Session(DateTimeOffset.UtcNow.AddMilliseconds(-1));
        clock.Add(expiring);
        clock.Add(valid);
        clock.Add(removed);
        clock.Remove(removed);
        clock.Start();

        await Eventually.TrueAsync(() => expiring.Expired, "the clock ends the session whose token expired", 10);

        Assert.False(valid.Expired);
        Assert.False(removed.Expired);
        Assert.Equal(2, clock.Sessions);
    }

    [Fact]
    public async Task Ticks_come_at_most_a_second_apart_whatever_the_heartbeat_interval()
    {
        // Token expiry rides on the same ticks: a 15 s heartbeat must not make an expiry 15 s late.
        await using var clock = new SessionClock(TimeSpan.FromSeconds(60));
        StreamSession expiring = Session(DateTimeOffset.UtcNow.AddMilliseconds(100));
        clock.Add(expiring);
        clock.Start();
        var waited = System.Diagnostics.Stopwatch.StartNew();

        await Eventually.TrueAsync(() => expiring.Expired, "the clock ends the session whose token expired", 10);

        Assert.True(waited.Elapsed < TimeSpan.FromSeconds(8), $"expired after {waited.Elapsed.TotalSeconds:F1} s");
    }

    private static StreamSession Session(DateTimeOffset tokenExpires)
    {
        ServiceProvider services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new IngestMetrics(services.GetRequiredService<IMeterFactory>());
        return new StreamSession(new Dictionary<string, long> { ["PN1"] = 0 }, new StreamOptions(), metrics, "sse", tokenExpires, NullLogger.Instance);
    }
}
