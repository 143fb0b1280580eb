using Memo.Ingest.Auth;
using Memo.Ingest.Configuration;
using Memo.Ingest.Events;
using Memo.Ingest.Health;
using Memo.Ingest.Inbox;
using Memo.Ingest.Ingest;
using Memo.Ingest.Observability;
using Memo.Ingest.Outbox;
using Memo.Ingest.Redis;
using Memo.Ingest.Sequencing;
using Memo.Ingest.Storage;
using Memo.Ingest.Streams;
using Memo.Ingest.Sync;
using Memo.Ingest.Testing;
using Memo.Ingest.Webhooks;
using Memo.Ingest.Webhooks.Parsing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.ObjectPool;
using Microsoft.Extensions.Options;
using Npgsql;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace Memo.Ingest;

/// <summary>
/// The composition root, shared by <c>Program</c> and the integration tests (which start the same host on a
/// loopback port). One <c>MapXxx()</c> per feature.
/// </summary>
public static partial class GatewayApplication
{
    public const string DefaultUrl = "http://127.0.0.1:8080";

    /// <summary>The logger whose being enabled makes ASP.NET Core create an Activity and a log scope per request.</summary>
    internal const string HostingDiagnosticsCategory = "Microsoft.AspNetCore.Hosting.Diagnostics";

    public static WebApplication Build(string[] args) => Build(args, configure: null);

    /// <summary>As <see cref="Build(string[])"/>; <paramref name="configure"/> runs last, before the container is built
    /// (the tests add a log capture there).</summary>
    internal static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(args);
        if (string.IsNullOrEmpty(builder.Configuration["urls"]))
        {
            builder.WebHost.UseUrls(DefaultUrl);
        }

        // Bound once: Kestrel's limits and the signature verifier need the values before the container is built.
        IngestOptions ingest = builder.Configuration.GetSection(IngestOptions.Section).Get<IngestOptions>() ?? new IngestOptions();
        WhatsAppOptions whatsApp = builder.Configuration.GetSection(WhatsAppOptions.Section).Get<WhatsAppOptions>() ?? new WhatsAppOptions();
        RedisOptions redis = builder.Configuration.GetSection(RedisOptions.Section).Get<RedisOptions>() ?? new RedisOptions();
        AuthOptions auth = builder.Configuration.GetSection(AuthOptions.Section).Get<AuthOptions>() ?? new AuthOptions();
        StreamOptions streams = builder.Configuration.GetSection(StreamOptions.Section).Get<StreamOptions>() ?? new StreamOptions();
        SequencerOptions sequencer = builder.Configuration.GetSection(SequencerOptions.Section).Get<SequencerOptions>() ?? new SequencerOptions();
        ServerOptions server = builder.Configuration.GetSection(ServerOptions.Section).Get<ServerOptions>() ?? new ServerOptions();
        OutboxOptions outbox = builder.Configuration.GetSection(OutboxOptions.Section).Get<OutboxOptions>() ?? new OutboxOptions();
        RefuseInsecureConfiguration(whatsApp);
        builder.Services.AddSingleton(Options.Create(ingest));
        builder.Services.AddSingleton(Options.Create(whatsApp));
        builder.Services.AddSingleton(Options.Create(redis));
        builder.Services.AddSingleton(Options.Create(streams));
        builder.Services.AddSingleton(Options.Create(sequencer));
        builder.Services.AddSingleton(Options.Create(outbox));

        // Per-request logs at Information would write a line per webhook; operators get counters instead.
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        // ASP.NET Core starts an Activity and a log scope for every request while its hosting logger is enabled at any
        // level, though that logger writes only Information and Debug lines (request started and finished): 2-5 points
        // of a core at 4,000 POSTs/s (docs/PERFORMANCE.md, sixteenth session). Off unless configured.
        if (builder.Configuration[$"Logging:LogLevel:{HostingDiagnosticsCategory}"] is null)
        {
            builder.Logging.AddFilter(HostingDiagnosticsCategory, LogLevel.None);
        }

        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = WebhookReceiver.DrainLimit(ingest.MaxBodyBytes);
            kestrel.Limits.MaxConcurrentConnections = server.MaxConnections;
            kestrel.Limits.MaxConcurrentUpgradedConnections = server.MaxConnections;
            kestrel.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(server.RequestHeadersTimeoutSeconds);
            kestrel.Limits.KeepAliveTimeout = TimeSpan.FromSeconds(server.KeepAliveTimeoutSeconds);
            kestrel.Limits.MinRequestBodyDataRate = new MinDataRate(server.MinRequestBodyBytesPerSecond, TimeSpan.FromSeconds(server.MinRequestBodyGraceSeconds));
        });
        // Shutdown waits for queued webhooks to commit (IngestPipeline.StopAsync) within this bound; orchestrators
        // must allow longer (deploy/kubernetes: terminationGracePeriodSeconds).
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = TimeSpan.FromSeconds(ingest.ShutdownTimeoutSeconds));

        // Registered by factory, so that the container disposes them with the host and their pooled connections close
        // (an instance handed to AddSingleton is never disposed: every host started in one process kept its connections
        // open until the pool pruned them minutes later).
        NpgsqlDataSource reads = PostgresDataSource.Create(builder.Configuration);
        builder.Services.AddSingleton(_ => reads);
        // The write path's own pool: writers (live and history), sequencer sessions, the backlog probe, the outbox sender's lease session
        // and one spare.
        WriterDataSource writes = PostgresDataSource.CreateWriter(builder.Configuration,
            Math.Max(1, ingest.Writers) + Math.Max(0, ingest.HistoryWriters) + Math.Max(1, sequencer.Loops) + 3);
        builder.Services.AddSingleton(_ => writes);
        builder.Services.AddSingleton(new FaultInjector(builder.Configuration));
        builder.Services.AddSingleton<DatabaseState>();
        builder.Services.AddHostedService<DatabaseBootstrapper>();
        builder.Services.AddSingleton<IngestMetrics>();
        // /metrics: our instruments, the runtime's (GC, thread pool, memory) and ASP.NET Core's (requests,
        // connections), collected by the OpenTelemetry SDK and rendered only when Prometheus scrapes.
        // Four runtime gauges are named *.count, which Prometheus reserves for histogram and summary series
        // (promtool rejects them). Three say little about the gateway and are left out; the thread pool's thread count
        // (worth watching when something blocks its workers) is renamed (docs/DECISIONS.md 11).
        builder.Services.AddOpenTelemetry().ConfigureResource(static resource => resource.AddService("memo-ingest")).WithMetrics(static metrics => metrics
            .AddMeter(IngestMetrics.MeterName, "System.Runtime", "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel")
            .AddView("dotnet.assembly.count", MetricStreamConfiguration.Drop)
            .AddView("dotnet.process.cpu.count", MetricStreamConfiguration.Drop)
            .AddView("dotnet.timer.count", MetricStreamConfiguration.Drop)
            .AddView("dotnet.thread_pool.thread.count", new MetricStreamConfiguration { Name = "dotnet.thread_pool.threads" })
            .AddPrometheusExporter(static prometheus =>
            {
                // Every scrape sees the instruments as they are now (the exporter's default replays a cached answer
                // for 300 ms); a scrape costs well under a millisecond of CPU (docs/PERFORMANCE.md).
                prometheus.ScrapeResponseCacheDurationMilliseconds = 0;
                // Series keep the names and labels the rules and dashboards in deploy/ use: no otel_scope_name label
                // on every series (the metric names already say which component they come from).
                prometheus.ScopeInfoEnabled = false;
            }));
        builder.Services.AddSingleton<GatewayRedis>();
        builder.Services.AddSingleton<DuplicateScreen>();
        // Registered in this order because hosted services stop in reverse order: the writers drain the queue into the
        // inbox, then the sequencers drain the inbox (and announce), then the stream hub stops.
        builder.Services.AddSingleton<StreamHub>();
        builder.Services.AddHostedService(static sp => sp.GetRequiredService<StreamHub>());
        builder.Services.AddSingleton<Sequencer>();
        builder.Services.AddHostedService(static sp => sp.GetRequiredService<Sequencer>());
        builder.Services.AddSingleton<InboxBacklog>();
        builder.Services.AddHostedService(static sp => sp.GetRequiredService<InboxBacklog>());
        builder.Services.AddSingleton<IngestPipeline>();
        builder.Services.AddHostedService(static sp => sp.GetRequiredService<IngestPipeline>());
        // Replies: stopped first, so that the answers of sends under way are committed while the sequencers still run.
        builder.Services.AddSingleton<OutboxMetrics>();
        builder.Services.AddSingleton<OutboxWakeup>();
        builder.Services.AddHostedService<OutboxSender>();
        builder.Services.AddSingleton(new WebhookSignatureVerifier(whatsApp.AppSecrets, whatsApp.InsecureAcceptUnsignedWebhooks));
        // Read tokens cannot be switched off either: without a signing key the gateway does not start.
        builder.Services.AddSingleton(new AccessTokens(auth));
        builder.Services.AddSingleton(new ReadRateLimiter(auth));
        builder.Services.AddSingleton<ObjectPool<ParsedWebhook>>(
            new DefaultObjectPool<ParsedWebhook>(new DefaultPooledObjectPolicy<ParsedWebhook>(), maximumRetained: 256));
        builder.Services.AddSingleton<WebhookReceiver>();

        configure?.Invoke(builder);
        WebApplication app = builder.Build();
        app.MapHealth();
        app.MapWhatsAppWebhooks();
        app.MapSyncApi();
        app.MapOutbox();
        app.UseCoalescingStreamWebSockets();
        // WebSocket pings double as the idle check: a peer that does not answer within the timeout is dropped. Stream
        // WebSockets (on the coalescing stream) are pinged by their sessions instead, from one clock, without a timer
        // per connection (StreamEndpoints, docs/DECISIONS.md 36); these options cover any other WebSocket.
        app.UseWebSockets(new WebSocketOptions
        {
            KeepAliveInterval = TimeSpan.FromSeconds(streams.HeartbeatSeconds),
            KeepAliveTimeout = TimeSpan.FromSeconds(streams.HeartbeatSeconds * 2),
        });
        app.MapStreams();
        app.MapInbox();
        app.MapPrometheusScrapingEndpoint();
        if (!app.Services.GetRequiredService<WebhookSignatureVerifier>().HasSecrets)
        {
            Log.UnsignedWebhooksAccepted(app.Logger);
        }

        return app;
    }

    /// <summary>Signature checking cannot be switched off by accident: without an app secret the gateway does not start,
    /// unless the explicit development flag is set (and then it says so loudly at start-up and in /readyz).</summary>
    private static void RefuseInsecureConfiguration(WhatsAppOptions whatsApp)
    {
        if (!whatsApp.AppSecrets.Any(static s => !string.IsNullOrEmpty(s)) && !whatsApp.InsecureAcceptUnsignedWebhooks)
        {
            throw new OptionsValidationException(WhatsAppOptions.Section, typeof(WhatsAppOptions),
                ["Memo:WhatsApp:AppSecrets is empty. Set Memo__WhatsApp__AppSecrets__0 to your Meta app secret; " +
                 "the gateway does not accept unsigned webhooks (for local development only: Memo__WhatsApp__InsecureAcceptUnsignedWebhooks=true)."]);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 10, EventName = "UnsignedWebhooksAccepted", Level = LogLevel.Critical,
            Message = "INSECURE: no Meta app secret is configured and Memo:WhatsApp:InsecureAcceptUnsignedWebhooks is on. " +
                      "This gateway accepts UNSIGNED webhooks from anyone who can reach it. Development use only.")]
        public static partial void UnsignedWebhooksAccepted(ILogger logger);
    }
}
