using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Memo.Ingest.Storage;

/// <summary>
/// Applies migrations at startup. If PostgreSQL is not reachable yet the host still starts (liveness stays green,
/// readiness and webhooks answer 503) and this keeps retrying with backoff until it succeeds.
/// </summary>
internal sealed partial class DatabaseBootstrapper(NpgsqlDataSource dataSource, DatabaseState state, ILogger<DatabaseBootstrapper> logger)
    : BackgroundService
{
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        // One synchronous attempt first, so that a healthy deployment is ready as soon as it listens.
        if (!await TryMigrateAsync(cancellationToken))
        {
            await base.StartAsync(cancellationToken);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var delay = TimeSpan.FromMilliseconds(250);
        while (!stoppingToken.IsCancellationRequested && !await TryMigrateAsync(stoppingToken))
        {
            await Task.Delay(delay, stoppingToken);
            delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 5000));
        }
    }

    private async Task<bool> TryMigrateAsync(CancellationToken cancellationToken)
    {
        try
        {
            int applied = await MigrationRunner.ApplyAsync(dataSource, cancellationToken);
            state.MarkSchemaReady();
            Log.SchemaReady(logger, applied, MigrationRunner.LatestVersion);
            return true;
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException)
        {
            Log.MigrationFailed(logger, e.Message);
            return false;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 100, EventName = "SchemaReady", Level = LogLevel.Information,
            Message = "Database schema ready: {Applied} migration(s) applied, schema version {Version}.")]
        public static partial void SchemaReady(ILogger logger, int applied, int version);

        [LoggerMessage(EventId = 101, EventName = "MigrationFailed", Level = LogLevel.Warning,
            Message = "Could not apply migrations yet; retrying. {Reason}")]
        public static partial void MigrationFailed(ILogger logger, string reason);
    }
}
