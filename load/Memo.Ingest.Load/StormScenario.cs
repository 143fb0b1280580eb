using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using Memo.Ingest.TestSupport;
using Npgsql;

namespace Memo.Ingest.Load;

/// <summary>
/// Meta's retry storm: most deliveries are copies of messages already stored. Each round runs the same closed-loop
/// load against a fresh database twice, once on PostgreSQL alone and once with Redis screening, and reports what
/// each delivery cost: acknowledgement latency, PostgreSQL transactions, time and inserted rows, and Redis' time.
/// </summary>
internal sealed class StormScenario(StormSettings settings)
{
    public async Task<int> RunAsync()
    {
        await using PostgresServer postgres = await PostgresServer.StartAsync();
        await using RedisServer redis = await RedisServer.StartAsync();
        var results = new List<StormResult>();
        for (int round = 1; round <= settings.Rounds; round++)
        {
            foreach (bool withRedis in (bool[])[false, true])
            {
                StormResult result = await RunOnceAsync(postgres, withRedis ? redis : null, round);
                results.Add(result);
                Console.WriteLine(result.Row());
            }
        }

        Console.WriteLine();
        Console.WriteLine($"Medians of {settings.Rounds} round(s), {settings.Seconds} s each, {settings.DuplicateRatio:P0} duplicates, {settings.Concurrency} concurrent senders:");
        Console.WriteLine(StormResult.Header);
        StormResult alone = StormResult.Median(results.Where(static r => !r.WithRedis).ToList());
        StormResult screened = StormResult.Median(results.Where(static r => r.WithRedis).ToList());
        Console.WriteLine(alone.Row());
        Console.WriteLine(screened.Row());
        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"With Redis / without: deliveries/s x{screened.DeliveriesPerSecond / alone.DeliveriesPerSecond:F2}, " +
            $"PostgreSQL time per delivery x{screened.PostgresMicrosPerDelivery / alone.PostgresMicrosPerDelivery:F2}, " +
            $"rows inserted per delivery x{screened.RowsPerDelivery / alone.RowsPerDelivery:F2}, " +
            $"transactions per delivery x{screened.TransactionsPerDelivery / alone.TransactionsPerDelivery:F2}; " +
            $"Redis costs {screened.RedisMicrosPerBatch:F0} us per screened batch."));
        return 0;
    }

    private async Task<StormResult> RunOnceAsync(PostgresServer postgres, RedisServer? redis, int round)
    {
        string database = await postgres.CreateDatabaseAsync("storm");
        string[] extra = redis is null ? [] : [$"--ConnectionStrings:Redis={redis.ConnectionString}"];
        await using GatewayHost gateway = await GatewayHost.StartAsync(database, extra);
        using var metrics = new MetricTotals(gateway.App.Services);
        string account = "PNstorm";

        // The messages the storm repeats: delivered once and stored (and, with Redis, remembered) before measuring.
        byte[][] stored = Enumerable.Range(0, settings.StoredMessages).Select(i => Body(account, $"wamid.stored.{i}", i)).ToArray();
        await Parallel.ForEachAsync(stored, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (body, _) => await PostAsync(gateway, body));
        await gateway.SequencedAsync();
        await Task.Delay(500);
        metrics.Reset();
        (long transactions, long inserted) before = await PostgresStatsAsync(database);

        long fresh = 0;
        var latencies = new List<double>[settings.Concurrency];
        var clock = Stopwatch.StartNew();
        TimeSpan duration = TimeSpan.FromSeconds(settings.Seconds);
        await Task.WhenAll(Enumerable.Range(0, settings.Concurrency).Select(sender => Task.Run(async () =>
        {
            var random = new Random(sender * 7919 + round);
            var mine = latencies[sender] = new List<double>(1 << 16);
            while (clock.Elapsed < duration)
            {
                byte[] body = random.NextDouble() < settings.DuplicateRatio
                    ? stored[random.Next(stored.Length)]
                    : Body(account, $"wamid.new.{sender}.{Interlocked.Increment(ref fresh)}", sender);
                long started = Stopwatch.GetTimestamp();
                await PostAsync(gateway, body);
                mine.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
        })));
        double elapsed = clock.Elapsed.TotalSeconds;
        (long transactions, long inserted) after = await PostgresStatsAsync(database);

        double[] all = latencies.SelectMany(static l => l).Order().ToArray();
        long deliveries = all.Length;
        return new StormResult(
            round, redis is not null, deliveries / elapsed,
            Percentile(all, 0.50), Percentile(all, 0.99),
            (double)(after.transactions - before.transactions) / deliveries,
            metrics["memo.ingest.commit.duration"].Sum * 1e6 / deliveries,
            (double)(after.inserted - before.inserted) / deliveries,
            metrics["memo.redis.screen.duration"].Count == 0 ? 0 : metrics["memo.redis.screen.duration"].Sum * 1e6 / metrics["memo.redis.screen.duration"].Count,
            (long)metrics["memo.ingest.duplicates", "redis"].Sum,
            (long)metrics["memo.ingest.duplicates", "postgresql"].Sum);
    }

    private static async Task PostAsync(GatewayHost gateway, byte[] body)
    {
        // The acknowledgement alone, as Meta sees it (GatewayHost.PostWebhookAsync would also wait for sequencing).
        using HttpResponseMessage response = await gateway.Client.SendAsync(WebhookRequest.Create(body, GatewayHost.Secret));
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new InvalidOperationException($"The gateway answered {(int)response.StatusCode}.");
        }
    }

    private static byte[] Body(string account, string wamid, int i) => Encoding.UTF8.GetBytes(WebhookPayloads.Envelope(account,
        contacts: [WebhookPayloads.Contact($"4915{i % 100:D4}", "Storm")],
        messages: [WebhookPayloads.TextMessage(wamid, $"4915{i % 100:D4}", 1700000000 + i, "a message in a retry storm")]));

    /// <summary>Committed transactions and inserted rows (staging rows included) of the run's database.</summary>
    private static async Task<(long, long)> PostgresStatsAsync(string database)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using (var flush = new NpgsqlCommand("SELECT pg_stat_force_next_flush()", connection))
        {
            await flush.ExecuteNonQueryAsync();
        }

        await Task.Delay(1100); // statistics reach pg_stat_database about once a second
        await using var command = new NpgsqlCommand("SELECT xact_commit, tup_inserted FROM pg_stat_database WHERE datname = current_database()", connection);
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    private static double Percentile(double[] sorted, double p) => sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];
}
