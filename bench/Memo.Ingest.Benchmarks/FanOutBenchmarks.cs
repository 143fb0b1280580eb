using System.Diagnostics.Metrics;
using System.Threading.Channels;
using BenchmarkDotNet.Attributes;
using Memo.Ingest.Configuration;
using Memo.Ingest.Ingest;
using Memo.Ingest.Observability;
using Memo.Ingest.Streams;
using Microsoft.Extensions.DependencyInjection;

namespace Memo.Ingest.Benchmarks;

/// <summary>
/// Fan-out of one committed event to every connection following its account: <see cref="StreamSession.Offer"/> on
/// each session (the hub's inner loop: overflow check, pending count, queue write), against writing the same array
/// into bare unbounded channels, its floor. Fresh sessions every iteration, so queues start empty.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[InvocationCount(256)]
public class FanOutBenchmarks
{
    private readonly StreamEvent[] _events = [new StreamEvent("106540352242922", 1, EventKind.MessageCreated, new byte[600])];
    private ServiceProvider _services = null!;
    private IngestMetrics _metrics = null!;
    private StreamSession[] _sessions = [];
    private Channel<StreamEvent[]>[] _channels = [];

    [Params(100, 1000)]
    public int Subscribers { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        _metrics = new IngestMetrics(_services.GetRequiredService<IMeterFactory>());
    }

    [GlobalCleanup]
    public void Cleanup() => _services.Dispose();

    [IterationSetup]
    public void FreshQueues()
    {
        var options = new StreamOptions { QueueCapacity = int.MaxValue };
        _sessions = [.. Enumerable.Range(0, Subscribers).Select(_ => new StreamSession(new Dictionary<string, long> { ["106540352242922"] = 0 }, options, _metrics, "websocket",
            DateTimeOffset.MaxValue, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance))];
        _channels = [.. Enumerable.Range(0, Subscribers).Select(static _ => Channel.CreateUnbounded<StreamEvent[]>(new UnboundedChannelOptions { SingleReader = true }))];
    }

    [Benchmark(Baseline = true, Description = "bare channel writes (floor)")]
    public void BareChannels()
    {
        foreach (Channel<StreamEvent[]> channel in _channels)
        {
            channel.Writer.TryWrite(_events);
        }
    }

    [Benchmark(Description = "StreamSession.Offer to every follower")]
    public void Offer()
    {
        foreach (StreamSession session in _sessions)
        {
            session.Offer(_events);
        }
    }
}
