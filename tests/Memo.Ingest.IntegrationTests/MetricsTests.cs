using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Memo.Ingest.TestSupport;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// /metrics as Prometheus sees it: valid for promtool, scraped by a real Prometheus server, and covering every metric
/// the shipped alert rules and dashboard use. The gateway runs as its own process so that no other host in the test
/// process shares its meters.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed partial class MetricsTests(PostgresFixture postgres)
{
    private const string RulesFile = "deploy/prometheus/memo-ingest.rules.yml";
    private const string ConfigFile = "deploy/prometheus/prometheus.yml";
    private const string DashboardFile = "deploy/grafana/memo-ingest-dashboard.json";

    [Fact]
    public async Task Metrics_PassPromtool_AndCountWhatHappened()
    {
        await using RedisServer redis = await RedisServer.StartAsync();
        await using GatewayProcess gateway = await StartGatewayAsync("metrics", redis);

        await SendTrafficAsync(gateway, "PNmetrics");
        using HttpResponseMessage response = await gateway.Client.GetAsync("/metrics");
        string text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", response.Content.Headers.ContentType!.ToString());
        (int exitCode, string output) = await ExternalTool.RunAsync("promtool", text, "check", "metrics");
        Assert.True(exitCode == 0, "promtool check metrics: " + output);

        Assert.Contains("memo_webhook_requests_total{http_response_status_code=\"200\",memo_outcome=\"accepted\"} 3\n", text, StringComparison.Ordinal);
        Assert.Contains("memo_webhook_requests_total{http_response_status_code=\"401\",memo_outcome=\"signature_mismatch\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("memo_webhook_requests_total{http_response_status_code=\"400\",memo_outcome=\"malformed_json\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("memo_ingest_events_total{memo_event_kind=\"message.created\"} 2\n", text, StringComparison.Ordinal);
        Assert.Contains("memo_redis_connected{} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE memo_ingest_commit_duration_seconds histogram\n", text, StringComparison.Ordinal);
        Assert.Contains("memo_webhook_ack_duration_seconds_count{} 3\n", text, StringComparison.Ordinal);
        Assert.Matches(@"memo_ingest_duplicates_total\{memo_screened_by=""(redis|postgresql)""\} 1\n", text);
        Assert.Matches(@"dotnet_gc_collections_total\{[^}]*\} \d+", text);
        Assert.Contains("# TYPE dotnet_process_memory_working_set_bytes gauge\n", text, StringComparison.Ordinal);
        // The runtime's up-down counters are gauges, and its *.count gauge that stays is renamed (promtool above).
        Assert.Contains("# TYPE dotnet_thread_pool_queue_length gauge\n", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE dotnet_thread_pool_threads gauge\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RulesAndDashboard_PassPromtool_AndUseOnlyMetricsTheGatewayExposes()
    {
        (int rulesExit, string rulesOutput) = await ExternalTool.RunAsync("promtool", null, "check", "rules", RulesFile);
        Assert.True(rulesExit == 0, "promtool check rules: " + rulesOutput);
        (int configExit, string configOutput) = await ExternalTool.RunAsync("promtool", null, "check", "config", ConfigFile);
        Assert.True(configExit == 0, "promtool check config: " + configOutput);

        await using RedisServer redis = await RedisServer.StartAsync();
        await using GatewayProcess gateway = await StartGatewayAsync("metrics_names", redis);
        await SendTrafficAsync(gateway, "PNnames");
        string text = await gateway.Client.GetStringAsync("/metrics");
        HashSet<string> exposed = [.. TypeLine().Matches(text).Select(static m => m.Groups["name"].Value)];

        var referenced = new HashSet<string>();
        foreach (string expression in RuleExpressions().Concat(DashboardExpressions()))
        {
            // Label names appear in selectors and in by/without clauses; what is left names metrics.
            string withoutLabels = LabelClause().Replace(Selector().Replace(expression, ""), "");
            foreach (Match name in MetricName().Matches(withoutLabels))
            {
                referenced.Add(name.Value);
            }
        }

        Assert.NotEmpty(referenced);
        string[] missing = [.. referenced.Where(name => !exposed.Contains(name) && !exposed.Contains(HistogramFamily().Replace(name, "")))];
        Assert.True(missing.Length == 0, "referenced but not exposed: " + string.Join(", ", missing));
    }

    /// <summary>
    /// Live records and a history backfill are two lanes in /metrics: the backlog and its age while nothing sequences
    /// (an acknowledging-only gateway), then the sequencer rounds of each lane once a sequencing gateway takes them.
    /// A backfill mixed into the live series would raise the live lag that alerts and autoscalers watch.
    /// </summary>
    [Fact]
    public async Task BacklogAndSequencerRounds_AreReportedPerLane()
    {
        string database = await postgres.Server.CreateDatabaseAsync("metrics_lanes");
        string chunk = CoexistencePayloads.HistoryChunk("PNlanes", 1, 0, 50, [CoexistencePayloads.Thread("4915550009",
            [.. Enumerable.Range(0, 300).Select(static i => CoexistencePayloads.HistoryText($"wamid.lanes.h{i}", "4915550009", 1690000000 + i, "old", "READ"))])]);
        string live = WebhookPayloads.Envelope("PNlanes", messages: [WebhookPayloads.TextMessage("wamid.lanes.live", "4915550009", 1700000000, "now")]);
        string later = WebhookPayloads.Envelope("PNlanes", messages: [WebhookPayloads.TextMessage("wamid.lanes.later", "4915550009", 1700000001, "later")]);
        await using (GatewayProcess acknowledger = await GatewayProcess.StartAsync(database, PostgresServer.FreePort(),
            environment: new Dictionary<string, string?> { ["Memo__Sequencer__Loops"] = "0", ["Memo__Sequencer__BacklogCheckMilliseconds"] = "50" }))
        {
            foreach (string body in (string[])[live, chunk, later])
            {
                using HttpResponseMessage accepted = await acknowledger.Client.SendAsync(WebhookRequest.Create(Encoding.UTF8.GetBytes(body), GatewayHost.Secret));
                Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
            }

            await Task.Delay(1100); // the records age past a second; the backlog is measured every 50 ms
            string waiting = await acknowledger.Client.GetStringAsync("/metrics");
            // Each lane's ids come from its own sequence, so a backfill appended between two live webhooks does not
            // count as live: two live messages and the chunk's import-progress record (a live-lane record) against
            // the chunk's 300 history messages. (With one id sequence for both, each span counted the other lane's
            // records appended after its oldest one: history read 301.)
            Assert.Equal(300, Gauge(waiting, "memo_ingest_inbox_backlog", "history"));
            Assert.Equal(3, Gauge(waiting, "memo_ingest_inbox_backlog", "live"));
            Assert.InRange(Gauge(waiting, "memo_ingest_inbox_age_seconds", "history"), 1, 60);
            Assert.InRange(Gauge(waiting, "memo_ingest_inbox_age_seconds", "live"), 1, 60);
            Assert.DoesNotContain("memo_sequencer_visibility_delay_seconds_count", waiting, StringComparison.Ordinal);
        }

        await using GatewayProcess sequencer = await GatewayProcess.StartAsync(database, PostgresServer.FreePort(),
            environment: new Dictionary<string, string?> { ["Memo__Sequencer__HistoryRecordsPerRound"] = "100" });
        await Eventually.TrueAsync(async () => await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE account = 'PNlanes'") == 302,
            "both lanes are sequenced");
        string text = await sequencer.Client.GetStringAsync("/metrics");
        // The live messages and the chunk's progress record in two live rounds (the plain statement takes the first
        // message and stops before the progress record, which needs the general statement; that one takes the rest);
        // the 300 history messages in history slices of at most 100.
        Assert.Equal(3, Gauge(text, "memo_sequencer_batch_records_sum", "live"));
        Assert.Equal(300, Gauge(text, "memo_sequencer_batch_records_sum", "history"));
        Assert.InRange(Gauge(text, "memo_sequencer_batch_records_count", "history"), 3, 300);
        Assert.InRange(Gauge(text, "memo_sequencer_visibility_delay_seconds_sum", "history"), 1, 600);
        Assert.Equal(2, Gauge(text, "memo_sequencer_visibility_delay_seconds_count", "live"));
    }

    [Fact]
    public async Task HistoryRecordsWithLiveIds_FromABinaryBeforeMigration10_AreMeasuredAgainstTheLiveSequence_AndSequencedFirst()
    {
        string database = await postgres.Server.CreateDatabaseAsync("metrics_legacy_ids");
        string chunk = CoexistencePayloads.HistoryChunk("PNlegacy", 1, 0, 50, [CoexistencePayloads.Thread("4915550010",
            [.. Enumerable.Range(0, 10).Select(static i => CoexistencePayloads.HistoryText($"wamid.legacy.h{i}", "4915550010", 1690000000 + i, "old", "READ"))])]);
        await using (GatewayProcess acknowledger = await GatewayProcess.StartAsync(database, PostgresServer.FreePort(),
            environment: new Dictionary<string, string?> { ["Memo__Sequencer__Loops"] = "0", ["Memo__Sequencer__BacklogCheckMilliseconds"] = "50" }))
        {
            // A history record as an instance of the previous version appends it during a rolling update: its id from
            // the inbox's identity, like a live record's.
            Assert.Equal(1, await Database.CountAsync(database, """
                WITH old AS (
                    INSERT INTO inbox (kind, flags, account, msg_id, wa_id, contact, ts, type, body, payload)
                    VALUES (1, 2, 'PNlegacy', 'wamid.legacy.old', '4915550010', '4915550010', 1680000000, 'text', 'older',
                            convert_to('{"id":"wamid.legacy.old","from":"4915550010","timestamp":"1680000000","type":"text","text":{"body":"older"}}', 'UTF8'))
                    RETURNING id)
                SELECT count(*) FROM old
                """));
            using HttpResponseMessage accepted = await acknowledger.Client.SendAsync(WebhookRequest.Create(Encoding.UTF8.GetBytes(chunk), GatewayHost.Secret));
            Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);

            // The old record's span on the live sequence (its id 1 to the chunk's progress record, 2) plus the chunk's
            // ten history ids: not the distance from a live id to 2^62.
            await Eventually.TrueAsync(async () => Gauge(await acknowledger.Client.GetStringAsync("/metrics"), "memo_ingest_inbox_backlog", "history") == 12,
                "the history backlog counts the old record and the chunk");
        }

        await using GatewayProcess sequencer = await GatewayProcess.StartAsync(database, PostgresServer.FreePort());
        await Eventually.TrueAsync(async () => await Database.CountAsync(database, "SELECT count(*) FROM messages WHERE account = 'PNlegacy'") == 11,
            "the old record and the chunk are sequenced");
        Assert.Equal(1, await Database.CountAsync(database, """
            SELECT count(*) FROM messages o
            WHERE o.account = 'PNlegacy' AND o.wamid = 'wamid.legacy.old'
              AND o.seq < (SELECT min(seq) FROM messages WHERE account = 'PNlegacy' AND wamid <> 'wamid.legacy.old')
            """));
    }

    /// <summary>The value of <paramref name="metric"/>'s series of one lane (exactly one must exist).</summary>
    private static double Gauge(string metrics, string metric, string lane)
    {
        string[] values = [.. metrics.Split('\n')
            .Where(line => line.StartsWith(metric + "{", StringComparison.Ordinal) && line.Contains($"memo_lane=\"{lane}\"", StringComparison.Ordinal))
            .Select(static line => line[(line.LastIndexOf(' ') + 1)..])];
        Assert.True(values.Length == 1, $"{values.Length} series of {metric} for lane {lane}");
        return double.Parse(values[0], System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task PrometheusServer_ScrapesTheGateway_AndQueriesTheSeries()
    {
        await using GatewayProcess gateway = await StartGatewayAsync("metrics_scrape", redis: null);
        await using PrometheusServer prometheus = await PrometheusServer.StartAsync(gateway.Address);

        await SendTrafficAsync(gateway, "PNscrape");

        await Eventually.TrueAsync(async () =>
        {
            Dictionary<string, double> accepted = await prometheus.QueryAsync("memo_webhook_requests_total{http_response_status_code=\"200\"}");
            return accepted.Values.SingleOrDefault() == 3;
        }, "Prometheus sees the 3 accepted webhooks");
        Dictionary<string, double> byStatus = await prometheus.QueryAsync("sum by (http_response_status_code) (memo_webhook_requests_total)");
        Assert.Equal(3, byStatus.Count);
        Dictionary<string, double> up = await prometheus.QueryAsync("up{job=\"memo-ingest\"}");
        Assert.Equal(1, up.Values.Single());
        Dictionary<string, double> created = await prometheus.QueryAsync("memo_ingest_events_total{memo_event_kind=\"message.created\"}");
        Assert.Equal(2, created.Values.Single());
    }

    private async Task<GatewayProcess> StartGatewayAsync(string name, RedisServer? redis)
    {
        string database = await postgres.Server.CreateDatabaseAsync(name);
        GatewayProcess gateway = await GatewayProcess.StartAsync(database, PostgresServer.FreePort(), redis?.ConnectionString);
        if (redis is not null)
        {
            await gateway.WaitForRedisAsync();
        }

        return gateway;
    }

    /// <summary>Three accepted webhooks (two messages, one repeated), one bad signature, one malformed body.</summary>
    private static async Task SendTrafficAsync(GatewayProcess gateway, string account)
    {
        byte[] first = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage($"wamid.{account}.1", "49", 1700000001, "one")]));
        byte[] second = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage($"wamid.{account}.2", "49", 1700000002, "two")]));
        foreach (byte[] body in (byte[][])[first, second, first])
        {
            using HttpResponseMessage accepted = await gateway.Client.SendAsync(WebhookRequest.Create(body, GatewayHost.Secret));
            Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        }

        using HttpResponseMessage unsigned = await gateway.Client.SendAsync(WebhookRequest.Create(first, "wrong-secret"));
        Assert.Equal(HttpStatusCode.Unauthorized, unsigned.StatusCode);
        using HttpResponseMessage malformed = await gateway.Client.SendAsync(WebhookRequest.Create("{\"object\":"u8.ToArray(), GatewayHost.Secret));
        Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
    }

    /// <summary>Each rule's <c>expr</c>: on its line, or the block of deeper-indented lines after <c>expr: |</c>.</summary>
    private static IEnumerable<string> RuleExpressions()
    {
        string[] lines = File.ReadAllLines(Path.Combine(RepositoryScript.Root, RulesFile));
        for (int i = 0; i < lines.Length; i++)
        {
            string trimmed = lines[i].TrimStart();
            if (!trimmed.StartsWith("expr:", StringComparison.Ordinal))
            {
                continue;
            }

            string expression = trimmed["expr:".Length..].Trim();
            if (expression == "|")
            {
                int indent = lines[i].Length - trimmed.Length;
                var block = new StringBuilder();
                while (i + 1 < lines.Length && lines[i + 1].Length - lines[i + 1].TrimStart().Length > indent)
                {
                    block.Append(lines[++i].Trim()).Append(' ');
                }

                expression = block.ToString();
            }

            yield return expression;
        }
    }

    private static IEnumerable<string> DashboardExpressions()
    {
        using JsonDocument dashboard = JsonDocument.Parse(File.ReadAllText(Path.Combine(RepositoryScript.Root, DashboardFile)));
        return [.. dashboard.RootElement.GetProperty("panels").EnumerateArray()
            .SelectMany(static panel => panel.GetProperty("targets").EnumerateArray())
            .Select(static target => target.GetProperty("expr").GetString()!)];
    }

    [GeneratedRegex(@"^# TYPE (?<name>[a-zA-Z_:][a-zA-Z0-9_:]*) ", RegexOptions.Multiline)]
    private static partial Regex TypeLine();

    [GeneratedRegex(@"\b(memo|dotnet|kestrel|http)_[a-z0-9_]+")]
    private static partial Regex MetricName();

    [GeneratedRegex(@"\{[^}]*\}")]
    private static partial Regex Selector();

    [GeneratedRegex(@"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")]
    private static partial Regex LabelClause();

    [GeneratedRegex(@"_(bucket|sum|count)$")]
    private static partial Regex HistogramFamily();
}
