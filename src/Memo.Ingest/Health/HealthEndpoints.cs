using Memo.Ingest.Ingest;
using Memo.Ingest.Redis;
using Memo.Ingest.Sequencing;
using Memo.Ingest.Storage;
using Memo.Ingest.Webhooks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Npgsql;

namespace Memo.Ingest.Health;

/// <summary>
/// <c>/healthz</c>: the process is alive (a liveness probe; never touches dependencies, so a database outage does not
/// get healthy pods restarted). <c>/readyz</c>: this instance can take webhooks: the database answers, migrations are
/// applied, and the ingest queue is not full. Redis and the inbox backlog are reported but do not decide readiness: the
/// gateway works without Redis (PostgreSQL screens duplicates and streams catch up from the event log), and the backlog
/// is shared by every instance, so taking them all out of a balancer for it would turn 503s with Retry-After into
/// connection errors.
/// </summary>
internal static class HealthEndpoints
{
    public static IEndpointRouteBuilder MapHealth(this IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", static context =>
        {
            context.Response.ContentType = "text/plain";
            return context.Response.WriteAsync("ok");
        });
        app.MapGet("/readyz", ReadyAsync);
        return app;
    }

    private static async Task ReadyAsync(HttpContext context)
    {
        var database = context.RequestServices.GetRequiredService<DatabaseState>();
        var pipeline = context.RequestServices.GetRequiredService<IngestPipeline>();
        var dataSource = context.RequestServices.GetRequiredService<NpgsqlDataSource>();
        var redis = context.RequestServices.GetRequiredService<GatewayRedis>();
        var backlog = context.RequestServices.GetRequiredService<InboxBacklog>();
        string redisState = !redis.IsConfigured ? "disabled" : redis.IsConnected ? "connected" : "disconnected";
        string signature = context.RequestServices.GetRequiredService<WebhookSignatureVerifier>().HasSecrets ? "enforced" : "disabled";

        bool databaseReachable = await PingAsync(dataSource, context.RequestAborted);
        bool schemaReady = database.SchemaReady;
        bool queueOpen = !pipeline.IsSaturated;
        bool ready = databaseReachable && schemaReady && queueOpen;

        context.Response.StatusCode = ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(
            $$$"""{"status":"{{{(ready ? "ready" : "not_ready")}}}","checks":{"database":{{{Json(databaseReachable)}}},"migrations":{{{Json(schemaReady)}}},"queue":{{{Json(queueOpen)}}},"queue_depth":{{{pipeline.Depth}}},"inbox_backlog":{{{backlog.Records}}},"redis":"{{{redisState}}}","signature":"{{{signature}}}"}}""");
    }

    private static string Json(bool value) => value ? "true" : "false";

    private static async Task<bool> PingAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(1));
            await using NpgsqlCommand command = dataSource.CreateCommand("SELECT 1");
            await command.ExecuteScalarAsync(timeout.Token);
            return true;
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or TimeoutException)
        {
            return false;
        }
    }
}
