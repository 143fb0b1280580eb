using System.Threading.Channels;
using Memo.Ingest.Configuration;
using Memo.Ingest.Events;
using Memo.Ingest.Observability;
using Memo.Ingest.Redis;
using Memo.Ingest.Storage;
using Memo.Ingest.Webhooks.Parsing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Memo.Ingest.Ingest;

/// <summary>
/// The bounded queue between the webhook endpoint and the group-commit writers. A full queue pushes back on the
/// request (it waits, then gets 503) rather than growing memory; nothing that was accepted into the queue is dropped.
/// On shutdown the queue is closed to new work, the writers drain and commit what is queued, then the host exits.
/// </summary>
internal sealed class IngestPipeline : IHostedService, IAsyncDisposable
{
    private readonly Channel<ParsedWebhook> _queue;
    private readonly IngestOptions _options;
    private readonly IngestWriter[] _writers;
    private Task[] _running = [];

    public IngestPipeline(IOptions<IngestOptions> options, NpgsqlDataSource dataSource, DatabaseState database,
        IngestMetrics metrics, DuplicateScreen screen, EventBus bus, GatewayRedis redis, ILoggerFactory loggerFactory)
    {
        _options = options.Value;
        _queue = Channel.CreateBounded<ParsedWebhook>(new BoundedChannelOptions(_options.ChannelCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = false,
            SingleWriter = false,
        });
        ILogger logger = loggerFactory.CreateLogger<IngestWriter>();
        _writers = new IngestWriter[Math.Max(1, _options.Writers)];
        for (int i = 0; i < _writers.Length; i++)
        {
            _writers[i] = new IngestWriter(i, _queue.Reader, dataSource, database, _options, metrics, screen, bus, redis, logger);
        }

        metrics.ObserveQueue(() => _queue.Reader.Count);
    }

    /// <summary>Queued webhooks waiting for a writer.</summary>
    public int Depth => _queue.Reader.Count;

    /// <summary>True when the queue is full: new webhooks wait and may be answered 503.</summary>
    public bool IsSaturated => _queue.Reader.Count >= _options.ChannelCapacity;

    /// <summary>
    /// Queues a parsed webhook and completes when its records are committed. The returned outcome is final: when it
    /// is not <see cref="IngestOutcome.Committed"/>, nothing of this webhook was stored by this call.
    /// </summary>
    public ValueTask<IngestOutcome> SubmitAsync(ParsedWebhook webhook)
    {
        return _queue.Writer.TryWrite(webhook) ? webhook.Completion : SubmitSlowAsync(webhook);
    }

    private async ValueTask<IngestOutcome> SubmitSlowAsync(ParsedWebhook webhook)
    {
        using var timeout = new CancellationTokenSource(_options.EnqueueTimeoutMilliseconds);
        try
        {
            await _queue.Writer.WriteAsync(webhook, timeout.Token);
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
        _running = Array.ConvertAll(_writers, static w => Task.Run(w.RunAsync));
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        // Close the queue, then let the writers commit everything already in it. The host's shutdown timeout bounds
        // this; a webhook still queued when the process dies was never answered 200, so Meta redelivers it.
        _queue.Writer.TryComplete();
        await Task.WhenAll(_running).WaitAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (IngestWriter writer in _writers)
        {
            await writer.DisposeAsync();
        }
    }
}
