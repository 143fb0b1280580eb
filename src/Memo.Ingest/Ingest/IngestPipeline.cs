using System.Diagnostics;
using System.Threading.Channels;
using Memo.Ingest.Configuration;
using Memo.Ingest.Observability;
using Memo.Ingest.Redis;
using Memo.Ingest.Sequencing;
using Memo.Ingest.Storage;
using Memo.Ingest.Testing;
using Memo.Ingest.Webhooks.Parsing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Memo.Ingest.Ingest;

/// <summary>
/// The bounded queue between the webhook endpoint and the group-commit writers. A full queue pushes back on the
/// request (it waits, then gets 503) rather than growing memory; nothing that was accepted into the queue is dropped.
/// A queue that has stayed full for longer than a request may wait for room is a sustained overload, not a burst: then
/// a request that finds it full is answered 503 at once (<see cref="QueueCongestion"/>).
/// New webhooks are also refused (503, backlogged) while the sequencers are too far behind the acknowledgements
/// (<see cref="InboxBacklog"/>). A writer that fails unexpectedly answers its in-flight webhooks 503 at once and is
/// restarted. On shutdown the queue is closed to new work, the writers drain and append what is queued, then the
/// host exits. Webhooks that carry history have a queue and writers of their own (<see cref="IngestOptions.HistoryWriters"/>):
/// a backfill's chunks are thousands of messages each, and a live webhook batched with one, or queued behind one, would
/// wait for its COPY.
/// </summary>
internal sealed partial class IngestPipeline : IHostedService, IAsyncDisposable
{
    private readonly Channel<ParsedWebhook> _queue;
    private readonly Channel<ParsedWebhook> _historyQueue;
    private readonly QueueCongestion _congestion;
    private readonly QueueCongestion _historyCongestion;
    private readonly IngestOptions _options;
    private readonly IngestWriter[] _writers;
    private readonly InboxBacklog _backlog;
    private readonly IngestMetrics _metrics;
    private readonly ILogger _logger;
    private Task[] _running = [];

    public IngestPipeline(IOptions<IngestOptions> options, WriterDataSource dataSource, DatabaseState database, IngestMetrics metrics,
        DuplicateScreen screen, Sequencer sequencer, InboxBacklog backlog, GatewayRedis redis, FaultInjector faults, ILoggerFactory loggerFactory)
    {
        _options = options.Value;
        _backlog = backlog;
        _metrics = metrics;
        _queue = CreateQueue(_options.ChannelCapacity);
        _historyQueue = _options.HistoryWriters > 0 ? CreateQueue(_options.ChannelCapacity) : _queue;
        // An overload: full for longer than one request may wait for room. Over once no request found it full for a quarter of that.
        var wait = TimeSpan.FromMilliseconds(_options.EnqueueTimeoutMilliseconds);
        _congestion = new QueueCongestion(wait, wait / 4);
        _historyCongestion = _historyQueue == _queue ? _congestion : new QueueCongestion(wait, wait / 4);
        _logger = loggerFactory.CreateLogger<IngestPipeline>();
        ILogger writerLogger = loggerFactory.CreateLogger<IngestWriter>();
        int live = Math.Max(1, _options.Writers);
        _writers = new IngestWriter[live + Math.Max(0, _options.HistoryWriters)];
        var contactProfiles = new RecentContactProfiles(_options.ContactProfileMemorySeconds);
        for (int i = 0; i < _writers.Length; i++)
        {
            _writers[i] = new IngestWriter(i, (i < live ? _queue : _historyQueue).Reader, dataSource, database, _options, metrics, screen, contactProfiles,
                sequencer, backlog, redis, faults, writerLogger);
        }

        metrics.ObserveQueue(() => Depth);
    }

    private static Channel<ParsedWebhook> CreateQueue(int capacity) => Channel.CreateBounded<ParsedWebhook>(new BoundedChannelOptions(capacity)
    {
        FullMode = BoundedChannelFullMode.Wait,
        SingleReader = false,
        SingleWriter = false,
    });

    /// <summary>Queued webhooks waiting for a writer.</summary>
    public int Depth => _queue.Reader.Count + (_historyQueue == _queue ? 0 : _historyQueue.Reader.Count);

    /// <summary>True when the queue is full: new webhooks wait and may be answered 503.</summary>
    public bool IsSaturated => _queue.Reader.Count >= _options.ChannelCapacity;

    /// <summary>
    /// Whether a webhook arriving now is refused before its body is read, verified and parsed: the live queue is full
    /// and has stayed full through a sustained overload (<see cref="QueueCongestion"/>; this notes the full queue, as a
    /// refused enqueue does). Under such an overload the gateway's CPU goes to the webhooks it can store, not to reading
    /// ones it would refuse anyway. A webhook carrying history is refused with them: live traffic comes first.
    /// </summary>
    public bool ShedsArrival()
    {
        // Every request asks, and the queue's count takes the channel's lock: look at it only during an overload.
        long now = Stopwatch.GetTimestamp();
        return _congestion.IsSustained(now) && IsSaturated && _congestion.NoteFull(now);
    }

    /// <summary>
    /// Queues a parsed webhook and completes when its records are durably appended to the inbox. The returned outcome
    /// is final: when it is not <see cref="IngestOutcome.Committed"/>, nothing of this webhook was stored by this call.
    /// </summary>
    public ValueTask<IngestOutcome> SubmitAsync(ParsedWebhook webhook)
    {
        if (_backlog.IsOverLimit)
        {
            return ValueTask.FromResult(IngestOutcome.Backlogged);
        }

        Channel<ParsedWebhook> queue = _queue;
        if (_historyQueue != _queue || _backlog.IsHistoryOverLimit)
        {
            if (webhook.CarriesHistory)
            {
                if (_backlog.IsHistoryOverLimit)
                {
                    return ValueTask.FromResult(IngestOutcome.Backlogged);
                }

                queue = _historyQueue;
            }
        }

        if (queue.Writer.TryWrite(webhook))
        {
            return webhook.Completion;
        }

        if ((queue == _queue ? _congestion : _historyCongestion).NoteFull(Stopwatch.GetTimestamp()))
        {
            return ValueTask.FromResult(IngestOutcome.Saturated);
        }

        return SubmitSlowAsync(queue, webhook);
    }

    private async ValueTask<IngestOutcome> SubmitSlowAsync(Channel<ParsedWebhook> queue, ParsedWebhook webhook)
    {
        using var timeout = new CancellationTokenSource(_options.EnqueueTimeoutMilliseconds);
        try
        {
            await queue.Writer.WriteAsync(webhook, timeout.Token);
        }
        catch (OperationCanceledException)
        {
            return IngestOutcome.Saturated;
        }
        catch (ChannelClosedException)
        {
            return IngestOutcome.ShuttingDown;
        }

        return await webhook.Completion;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _running = Array.ConvertAll(_writers, writer => Task.Run(() => SuperviseAsync(writer), CancellationToken.None));
        return Task.CompletedTask;
    }

    /// <summary>
    /// Runs a writer until the queue is closed and drained. If it throws (a bug, not a database failure: those are
    /// answered inside the writer), the webhooks it holds are answered 503 at once, so that no request waits for a
    /// writer that is gone, and it starts again.
    /// </summary>
    private async Task SuperviseAsync(IngestWriter writer)
    {
        while (true)
        {
            try
            {
                await writer.RunAsync();
                return;
            }
            catch (Exception e)
            {
                // Counted and logged before the webhooks are answered: whoever gets the 503 may look at both at once.
                _metrics.WriterRestarted();
                Log.WriterFailed(_logger, writer.Id, writer.InFlight, e);
                writer.FailInFlight();
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, Math.Max(10, _options.ReconnectBackoffMilliseconds))));
            }
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        // Close the queue, then let the writers append everything already in it. The host's shutdown timeout bounds
        // this; a webhook still queued when the process dies was never answered 200, so Meta redelivers it.
        _queue.Writer.TryComplete();
        _historyQueue.Writer.TryComplete();
        await Task.WhenAll(_running).WaitAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (IngestWriter writer in _writers)
        {
            await writer.DisposeAsync();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 205, EventName = "WriterFailed", Level = LogLevel.Error,
            Message = "Writer {Writer} failed unexpectedly; {Webhooks} webhook(s) it held are answered 503 and it is restarted.")]
        public static partial void WriterFailed(ILogger logger, int writer, int webhooks, Exception exception);
    }
}
