using System.Text;
using Memo.Ingest.Configuration;
using Memo.Ingest.Observability;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Memo.Ingest.Redis;

/// <summary>
/// The gateway's Redis, when <c>ConnectionStrings:Redis</c> is set: one StackExchange.Redis multiplexer, shared by the
/// writers and sequencers (screening and remembering ids, waking sequencers, publishing events) and the subscribers
/// (StreamHub, Sequencer). StackExchange.Redis' own connection string is the configuration.
///
/// Redis is an optimisation here, never a dependency: the multiplexer fails commands at once while disconnected
/// (<see cref="BacklogPolicy.FailFast"/>, no backlog of commands that would replay stale work after an outage), the
/// gateway starts without waiting for it, and every caller bounds its wait by the screening timeout.
/// </summary>
internal sealed partial class GatewayRedis : IAsyncDisposable
{
    private readonly ILogger _logger;
    private readonly IngestMetrics _metrics;
    private readonly Lock _gate = new();
    private readonly List<Subscription> _subscriptions = [];
    private readonly Task? _connecting;
    private ConnectionMultiplexer? _multiplexer;
    private IDatabase? _database;
    private bool _reportedDown;
    private bool _everConnected;
    private bool _disposed;

    public GatewayRedis(IConfiguration configuration, IOptions<RedisOptions> options, IngestMetrics metrics, ILogger<GatewayRedis> logger)
    {
        _logger = logger;
        _metrics = metrics;
        metrics.ObserveRedis(() => IsConnected ? 1 : 0);
        Settings = options.Value;
        KeyPrefix = Encoding.UTF8.GetBytes(Settings.KeyPrefix);
        EventChannel = RedisChannel.Literal(Settings.KeyPrefix + Settings.EventChannel);
        InboxChannel = RedisChannel.Literal(Settings.KeyPrefix + "inbox");
        string? connectionString = configuration.GetConnectionString("Redis");
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            Log.Disabled(logger);
            return;
        }

        Configuration = ParseConfiguration(connectionString, Settings);
        Endpoint = Configuration.ToString(includePassword: false);
        // The first attempt can take up to connectTimeout; the gateway does not wait for it (nor for any later one).
        _connecting = Task.Run(ConnectAsync);
    }

    public RedisOptions Settings { get; }

    /// <summary>Null when Redis is not configured.</summary>
    public ConfigurationOptions? Configuration { get; }

    public bool IsConfigured => Configuration is not null;

    /// <summary>The connection string without its password, for logs.</summary>
    public string Endpoint { get; } = "";

    /// <summary>The database to send commands to, or null while Redis is not configured or not connected.</summary>
    public IDatabase? Commands => IsConnected ? _database : null;

    public byte[] KeyPrefix { get; }

    /// <summary>The pub/sub channel that carries committed events between instances.</summary>
    public RedisChannel EventChannel { get; }

    /// <summary>The pub/sub channel on which writers wake the sequencers of every instance after appending.</summary>
    public RedisChannel InboxChannel { get; }

    public bool IsConnected => Volatile.Read(ref _multiplexer)?.IsConnected ?? false;

    /// <summary>
    /// Parses <c>ConnectionStrings:Redis</c> (StackExchange.Redis' format) and applies what the gateway needs whatever
    /// the string says: never give up connecting, fail commands fast while disconnected. A malformed string stops the
    /// start with the parser's message.
    /// </summary>
    internal static ConfigurationOptions ParseConfiguration(string connectionString, RedisOptions settings)
    {
        ConfigurationOptions configuration;
        try
        {
            configuration = ConfigurationOptions.Parse(connectionString);
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"ConnectionStrings:Redis is not a valid StackExchange.Redis connection string: {e.Message}", e);
        }

        configuration.AbortOnConnectFail = false;
        configuration.BacklogPolicy = BacklogPolicy.FailFast;
        configuration.ClientName ??= "memo-ingest";
        if (!string.IsNullOrEmpty(settings.TrustedCertificateFile))
        {
            // A private CA (a managed Redis' own, or a test's): trusted for this connection only.
            configuration.TrustIssuer(settings.TrustedCertificateFile);
        }

        return configuration;
    }

    /// <summary>
    /// Subscribes <paramref name="handler"/> to <paramref name="channel"/> for the life of the gateway, now or once the
    /// first connection attempt is over. StackExchange.Redis subscribes again after every reconnection;
    /// <paramref name="resubscribed"/> runs then, because what was published meanwhile is gone (pub/sub is at most
    /// once): the subscriber catches up from PostgreSQL.
    /// </summary>
    public void Subscribe(RedisChannel channel, Action<RedisChannel, RedisValue> handler, Action resubscribed)
    {
        if (!IsConfigured)
        {
            return;
        }

        var subscription = new Subscription(channel, handler, resubscribed);
        ConnectionMultiplexer? multiplexer;
        lock (_gate)
        {
            _subscriptions.Add(subscription);
            multiplexer = _multiplexer;
        }

        if (multiplexer is not null)
        {
            _ = SubscribeAsync(multiplexer, subscription);
        }
    }

    public async ValueTask DisposeAsync()
    {
        ConnectionMultiplexer? multiplexer;
        lock (_gate)
        {
            // The container disposes singletons once, but hosted services that hold this may stop after it.
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            multiplexer = _multiplexer;
        }

        if (_connecting is not null)
        {
            await _connecting;
        }

        multiplexer ??= _multiplexer;
        if (multiplexer is not null)
        {
            await multiplexer.DisposeAsync();
        }
    }

    private async Task ConnectAsync()
    {
        ConnectionMultiplexer multiplexer;
        try
        {
            // With AbortOnConnectFail off this returns after the first attempt, connected or not, and keeps trying.
            multiplexer = await ConnectionMultiplexer.ConnectAsync(Configuration!);
        }
        catch (Exception e)
        {
            Log.Unusable(_logger, Endpoint, e);
            return;
        }

        multiplexer.ConnectionFailed += OnConnectionFailed;
        multiplexer.ConnectionRestored += OnConnectionRestored;
        Subscription[] subscriptions;
        lock (_gate)
        {
            if (_disposed)
            {
                multiplexer.Dispose();
                return;
            }

            _database = multiplexer.GetDatabase();
            Volatile.Write(ref _multiplexer, multiplexer);
            subscriptions = [.. _subscriptions];
        }

        if (multiplexer.IsConnected)
        {
            OnConnected();
        }
        else
        {
            ReportDown("not reachable");
        }

        foreach (Subscription subscription in subscriptions)
        {
            await SubscribeAsync(multiplexer, subscription);
        }
    }

    private static async Task SubscribeAsync(ConnectionMultiplexer multiplexer, Subscription subscription)
    {
        try
        {
            await multiplexer.GetSubscriber().SubscribeAsync(subscription.Channel, subscription.Handler);
        }
        catch (RedisException)
        {
            // Not connected now: the multiplexer keeps the subscription and makes it when the connection is restored
            // (OnConnectionRestored then tells the subscriber to catch up).
        }
    }

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e)
    {
        if (e.ConnectionType == ConnectionType.Subscription)
        {
            Subscription[] subscriptions;
            lock (_gate)
            {
                subscriptions = [.. _subscriptions];
            }

            foreach (Subscription subscription in subscriptions)
            {
                subscription.Resubscribed();
            }
        }
        else if (e.ConnectionType == ConnectionType.Interactive)
        {
            OnConnected();
        }
    }

    private void OnConnected()
    {
        // Once per outage, not once per reconnect attempt.
        if (_everConnected)
        {
            _metrics.RedisReconnected();
        }

        _everConnected = true;
        _reportedDown = false;
        Log.Connected(_logger, Endpoint);
    }

    private void OnConnectionFailed(object? sender, ConnectionFailedEventArgs e)
    {
        if (e.ConnectionType == ConnectionType.Interactive)
        {
            ReportDown($"{e.FailureType}: {e.Exception?.Message}");
        }
    }

    private void ReportDown(string reason)
    {
        if (!_reportedDown)
        {
            _reportedDown = true;
            Log.Disconnected(_logger, Endpoint, reason);
        }
    }

    private sealed record Subscription(RedisChannel Channel, Action<RedisChannel, RedisValue> Handler, Action Resubscribed);

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

        [LoggerMessage(EventId = 403, EventName = "RedisUnusable", Level = LogLevel.Error,
            Message = "Redis at {Endpoint} cannot be used; the gateway runs on PostgreSQL alone until it is restarted.")]
        public static partial void Unusable(ILogger logger, string endpoint, Exception error);
    }
}
