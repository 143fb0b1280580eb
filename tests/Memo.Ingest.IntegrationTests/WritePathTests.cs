using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Memo.Ingest.Sequencing;
using Memo.Ingest.Storage;
using Memo.Ingest.Testing;
using Memo.Ingest.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// The write path's own guarantees beyond storing: a writer that dies is noticed, the write pool cannot be starved by
/// reads, the isolation level the seq argument rests on is pinned, and the sequencer's plan stays index probes
/// whatever batch sizes it saw first.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class WritePathTests(PostgresFixture postgres)
{
    [Fact]
    public async Task Writer_FailsUnexpectedly_ItsWebhooksAnswered503AtOnce_AndItIsRestarted()
    {
        string database = await postgres.Server.CreateDatabaseAsync("writer_death");
        var logs = new LogCapture();
        // One writer and a long enqueue wait: a webhook left waiting for a dead writer would hang for 30 s.
        await using GatewayHost gateway = await GatewayHost.StartAsync(database, logs, "--Memo:Ingest:Writers=1", "--Memo:Ingest:EnqueueTimeoutMilliseconds=30000");
        using var restarts = new CounterRecorder(gateway.App.Services, "memo.ingest.writer.restarts", "");
        gateway.App.Services.GetRequiredService<FaultInjector>().Arm(FaultInjector.WriterBatch);

        var elapsed = Stopwatch.StartNew();
        using HttpResponseMessage failed = await gateway.PostWebhookAsync(WebhookPayloads.Envelope("PNdeath", messages: [WebhookPayloads.TextMessage("wamid.d1", "49", 1, "x")]));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.StatusCode);
        Assert.NotNull(failed.Headers.RetryAfter);
        Assert.True(elapsed.Elapsed < TimeSpan.FromSeconds(15), $"answered after {elapsed.Elapsed}, not at once");
        Assert.Equal(1, restarts[""]);
        Assert.Contains(logs.Entries, static e => e.EventId.Name == "WriterFailed");

        // The restarted writer takes the retry.
        using HttpResponseMessage retried = await gateway.PostWebhookAsync(WebhookPayloads.Envelope("PNdeath", messages: [WebhookPayloads.TextMessage("wamid.d1", "49", 1, "x")]));
        Assert.Equal(HttpStatusCode.OK, retried.StatusCode);
        Assert.Single(await SyncClient.GetAllAsync(gateway.Client, "PNdeath", "messages"));
    }

    [Fact]
    public async Task ReadPoolExhausted_WebhooksAreStillAcknowledgedAndSequenced()
    {
        // Two read connections, taken by the test: the readers' pool is empty, the writers' must not be.
        string database = await postgres.Server.CreateDatabaseAsync("pools");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database + ";Maximum Pool Size=2;Timeout=2");
        var reads = gateway.App.Services.GetRequiredService<NpgsqlDataSource>();
        await using NpgsqlConnection first = await reads.OpenConnectionAsync();
        await using NpgsqlConnection second = await reads.OpenConnectionAsync();

        using (HttpResponseMessage page = await gateway.Client.GetAsync("/v1/accounts/PNpools/messages"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, page.StatusCode);
        }

        string[] bodies = [.. Enumerable.Range(0, 20).Select(i => WebhookPayloads.Envelope("PNpools", messages: [WebhookPayloads.TextMessage($"wamid.pool{i}", "49", i, "p")]))];
        HttpResponseMessage[] responses = await Task.WhenAll(bodies.Select(b => gateway.Client.SendAsync(WebhookRequest.Create(Encoding.UTF8.GetBytes(b), GatewayHost.Secret))));
        Assert.All(responses, static r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        await SequencedWait.UntilSequencedAsync(database);
        Assert.Equal(20, await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE account = 'PNpools'"));
    }

    [Fact]
    public async Task WriterSessions_AreReadCommitted_EvenWhenTheDatabaseDefaultIsSerializable()
    {
        string database = await postgres.Server.CreateDatabaseAsync("isolation");
        await using (var connection = new NpgsqlConnection(database))
        {
            await connection.OpenAsync();
            await using var alter = new NpgsqlCommand($"ALTER DATABASE \"{connection.Database}\" SET default_transaction_isolation = 'serializable'", connection);
            await alter.ExecuteNonQueryAsync();
        }

        await using GatewayHost gateway = await GatewayHost.StartAsync(database);
        Assert.Equal("serializable", await ShowIsolationAsync(await gateway.App.Services.GetRequiredService<NpgsqlDataSource>().OpenConnectionAsync()));
        Assert.Equal("read committed", await ShowIsolationAsync(await gateway.App.Services.GetRequiredService<WriterDataSource>().OpenConnectionAsync()));

        HttpResponseMessage[] responses = await Task.WhenAll(Enumerable.Range(0, 30).Select(i => gateway.PostWebhookAsync(
            WebhookPayloads.Envelope($"PNiso{i % 3}", messages: [WebhookPayloads.TextMessage($"wamid.iso{i}", "49", i, "i")]))));
        Assert.All(responses, static r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.Equal(30, await Database.CountAsync(database, "SELECT count(*) FROM messages"));
    }

    /// <summary>
    /// The bimodality the old write path had: a prepared statement's generic plan, made while batches were tiny,
    /// joined staging rows with nested loops, and large batches then took hundreds of milliseconds per statement. The
    /// sequencer's statements must give a plan in which every nested loop probes an index (or a LATERAL subquery that
    /// does) for each outer row, and which scans no table, whatever the statistics. Generic plan, after tiny batches.
    /// The plain statement also finds the oldest record for the general one through an index of its own (migration
    /// 0011): with a predicate that differs from the index's, min(id) walks the live index past every waiting record.
    /// </summary>
    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public async Task SequencerStatement_GenericPlanAfterTinyBatches_OnlyProbesIndexes(bool plain, bool eventsOnly)
    {
        string database = await postgres.Server.CreateDatabaseAsync("plan");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database);
        for (int i = 0; i < 8; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(WebhookPayloads.Envelope("PNplan", messages: [WebhookPayloads.TextMessage($"wamid.tiny{i}", "49", i, "t")],
                statuses: [WebhookPayloads.Status($"wamid.out{i}", "delivered", 1700000000 + i, "49")], contacts: [WebhookPayloads.Contact("49", $"n{i}")]))).StatusCode);
        }

        await using NpgsqlConnection connection = await gateway.App.Services.GetRequiredService<WriterDataSource>().OpenConnectionAsync();
        await using (var analyze = new NpgsqlCommand("ANALYZE", connection))
        {
            await analyze.ExecuteNonQueryAsync();
        }

        await using (var prepare = new NpgsqlCommand(plain ? "PREPARE drain_plan(int[], int) AS " + (eventsOnly ? SequencerSql.DrainPlainEventsOnly : SequencerSql.DrainPlain) : "PREPARE drain_plan(int[], int, int) AS " + SequencerSql.Drain, connection))
        {
            await prepare.ExecuteNonQueryAsync();
        }

        string plan;
        // Writer sessions plan prepared statements generically (PostgresDataSource.CreateWriter).
        await using (var explain = new NpgsqlCommand(plain ? "EXPLAIN (FORMAT JSON) EXECUTE drain_plan('{0,1,2,3}', 5000)" : "EXPLAIN (FORMAT JSON) EXECUTE drain_plan('{0,1,2,3}', 5000, 500)", connection))
        {
            plan = (string)(await explain.ExecuteScalarAsync())!;
        }

        var violations = new List<string>();
        Walk(JsonDocument.Parse(plan).RootElement[0].GetProperty("Plan"), violations);
        Assert.True(violations.Count == 0, string.Join('\n', violations) + "\n" + plan);
        if (plain)
        {
            // Otherwise min(id) walks the live index past every plain record waiting.
            Assert.True(plan.Contains("\"inbox_general\"", StringComparison.Ordinal), "the plain statement finds the first record for the general one without inbox_general\n" + plan);
        }

        // And the real thing: a 2,000-message webhook after the tiny ones is sequenced like any other.
        string large = WebhookPayloads.Envelope("PNplan", messages: Enumerable.Range(0, 2000).Select(i => WebhookPayloads.TextMessage($"wamid.large{i}", $"49{i % 50}", 1700001000 + i, "l")));
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(Encoding.UTF8.GetBytes(large))).StatusCode);
        Assert.Equal(2008, await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE account = 'PNplan' AND direction = 'inbound'"));
    }

    private static void Walk(JsonElement node, List<string> violations)
    {
        string type = node.GetProperty("Node Type").GetString()!;
        if (type is "Seq Scan" or "Bitmap Heap Scan")
        {
            violations.Add($"{type} on {node.GetProperty("Relation Name").GetString()}");
        }

        if (node.TryGetProperty("Plans", out JsonElement children))
        {
            JsonElement[] plans = [.. children.EnumerateArray()];
            if (type == "Nested Loop" && !IsTheOneRowSummary(plans.Single(static p => p.GetProperty("Parent Relationship").GetString() == "Outer")))
            {
                // The inner side runs once per outer row: it must be an index probe, never a scan of rows.
                JsonElement inner = plans.Single(static p => p.GetProperty("Parent Relationship").GetString() == "Inner");
                if (!ProbesAnIndex(inner))
                {
                    violations.Add($"Nested Loop whose inner side is {inner.GetProperty("Node Type").GetString()}, not an index probe");
                }
            }

            foreach (JsonElement child in plans)
            {
                Walk(child, violations);
            }
        }
    }

    private static bool ProbesAnIndex(JsonElement node)
    {
        string type = node.GetProperty("Node Type").GetString()!;
        if (type is "Index Scan" or "Index Only Scan")
        {
            return true;
        }

        bool hasChildren = node.TryGetProperty("Plans", out JsonElement children);
        if (type == "Append")
        {
            // LATERAL (SELECT outer columns UNION ALL (probe LIMIT 1)): constants and probes only.
            return children.EnumerateArray().All(static c => c.GetProperty("Node Type").GetString() == "Result" && !c.TryGetProperty("Plans", out _) || ProbesAnIndex(c));
        }

        return type is "Limit" or "Result" or "Subquery Scan" or "Memoize" && hasChildren && children.EnumerateArray().Any(ProbesAnIndex);
    }

    /// <summary>The statement's round summary (one aggregate row) joined to its events: the inner side runs once.</summary>
    private static bool IsTheOneRowSummary(JsonElement outer) =>
        outer.GetProperty("Node Type").GetString() == "CTE Scan" && outer.GetProperty("CTE Name").GetString() == "summary";

    private static async Task<string> ShowIsolationAsync(NpgsqlConnection connection)
    {
        await using (connection)
        {
            await using var show = new NpgsqlCommand("SHOW transaction_isolation", connection);
            return (string)(await show.ExecuteScalarAsync())!;
        }
    }
}
