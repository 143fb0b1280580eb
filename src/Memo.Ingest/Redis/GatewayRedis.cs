using System.Text;
using Memo.Ingest.Configuration;
using Memo.Ingest.Observability;
using Memo.Redis;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Memo.Ingest.Redis;

/// <summary>
/// The gateway's Redis, when <c>ConnectionStrings:Redis</c> is set: one multiplexed command connection shared by the
/// writers and sequencers (screening and recording ids, waking sequencers, publishing events). This class, its users
/// (DuplicateScreen, IngestWriter, CommittedEventPublisher) and the subscribers (StreamHub, Sequencer) are the seam to Redis; a different client library would replace what is behind it.
/// </summary>
internal sealed partial class GatewayRedis : IAsyncDisposable
{
    private readonly ILogger _logger;
    private readonly IngestMetrics _metrics;
    private bool _reportedDown;
    private bool _everConnected;

    public GatewayRedis(IConfiguration configuration, IOptions<RedisOptions> options, IngestMetrics metrics, ILogger<GatewayRedis> logger)
    {
        _logger = logger;
        _metrics = metrics;
        metrics.ObserveRedis(() => IsConnected ? 1 : 0);
        Settings = options.Value;
        KeyPrefix = Encoding.UTF8.GetBytes(Settings.KeyPrefix);
        EventChannel = Settings.KeyPrefix + Settings.EventChannel;
        InboxChannel = Settings.KeyPrefix + "inbox";
        string? connectionString = configuration.GetConnectionString("Redis");
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            Log.Disabled(logger);
            return;
        }

        // A malformed connection string stops the start with the parser's message (FormatException).
        ConnectionOptions = RedisConnectionOptions.Parse(connectionString);
        ConnectionOptions.ClientName ??= "memo-ingest";
        Commands = RedisConnection.Create(ConnectionOptions);
        Commands.StateChanged += OnStateChanged;
    }

    public RedisOptions Settings { get; }

    /// <summary>Null when Redis is not configured.</summary>
    public RedisConnectionOptions? ConnectionOptions { get; }

    /// <summary>Null when Redis is not configured; otherwise always present, connected or reconnecting.</summary>
    public RedisConnection? Commands { get; }

    public byte[] KeyPrefix { get; }

    public string EventChannel { get; }

    /// <summary>The pub/sub channel on which writers wake the sequencers of every instance after appending.</summary>
    public string InboxChannel { get; }

    public bool IsConnected => Commands?.IsConnected ?? false;

    public ValueTask DisposeAsync() => Commands?.DisposeAsync() ?? ValueTask.CompletedTask;

    private void OnStateChanged(RedisConnectionChange change)
    {
        // Once per outage, not once per reconnect attempt.
        if (change.IsConnected)
        {
            if (_everConnected)
            {
                _metrics.RedisReconnected();
            }

            _everConnected = true;
            _reportedDown = false;
            Log.Connected(_logger, ConnectionOptions!.ToString());
        }
        else if (!_reportedDown)
        {
            _reportedDown = true;
            Log.Disconnected(_logger, ConnectionOptions!.ToString(), change.Error?.Message);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 400, EventName = "RedisDisabled", Level = LogLevel.Information,
            Message = "ConnectionStrings:Redis is not set: duplicates are screened by PostgreSQL only and live events stay on this instance.")]
        public static partial void Disabled(ILogger logger);

        [LoggerMessage(EventId = 401, EventName = "RedisConnected", Level = LogLevel.Information, Message = "Connected to Redis at {Endpoint}.")]
        public static partial void Connected(ILogger logger, string endpoint);

        [LoggerMessage(EventId = 402, EventName = "RedisDisconnected", Level = LogLevel.Warning,
            Message = "Redis at {Endpoint} is unavailable ({Reason}); ingestion goes on without it and the client keeps reconnecting.")]
        public static partial void Disconnected(ILogger logger, string endpoint, string? reason);
    }
}
