using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Memo.Ingest.Sequencing;
using Memo.Ingest.Storage;
using Memo.Ingest.TestSupport;
using Memo.Ingest.Webhooks.Parsing;
using Npgsql;

namespace Memo.Ingest.Load.Profile;

/// <summary>
/// Where PostgreSQL's CPU goes on the write path, per statement and per message, measured on a private server with
/// nothing else running: the CPU time of the backend that runs the statement (from /proc), so waiting for the disk or
/// the client does not count. (1) The acknowledgement: the same records appended through the gateway's
/// <see cref="InboxAppender"/> (prepared multi-row INSERTs, COPY from 64 rows) and through binary COPY alone, per
/// batch size. (2) The sequencer's statement, per round size, on text messages of 20 accounts (the plain statement), and as a history
/// statement on a backfill's messages, per slice size. (3) For a live round of 1,000 and a history statement of 50,
/// the time of each part of the statement (EXPLAIN ANALYZE).
/// </summary>
internal static class WritePathProfile
{
    public static async Task<int> RunAsync(TextWriter output)
    {
        await using PostgresServer postgres = await PostgresServer.StartAsync();
        string database = await postgres.CreateDatabaseAsync("profile");
        await using (var migrate = NpgsqlDataSource.Create(database))
        {
            await MigrationRunner.ApplyAsync(migrate, CancellationToken.None);
        }

        // The gateway's own session settings (PostgresDataSource.CreateWriter).
        string writer = new NpgsqlConnectionStringBuilder(database) { Options = Memo.Ingest.Storage.PostgresDataSource.WriterSessionOptions }.ConnectionString;
        await output.WriteLineAsync("Acknowledgement: PostgreSQL CPU per batch (and per record) to append one-message text webhooks to the inbox.");
        await output.WriteLineAsync();
        await output.WriteLineAsync("| records per batch | InboxAppender (the gateway's) | binary COPY only | appender ÷ COPY |");
        await output.WriteLineAsync("|---|---|---|---|");
        foreach (int size in (int[])[1, 4, 8, 16, 32, 64, 256])
        {
            double appender = await AppendCostAsync(writer, size, useCopy: false);
            double copy = await AppendCostAsync(writer, size, useCopy: true);
            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"| {size} | {appender:F0} µs ({appender / size:F1} µs/record) | {copy:F0} µs ({copy / size:F1} µs/record) | {appender / copy:F2} |"));
        }

        await output.WriteLineAsync();
        await output.WriteLineAsync("Sequencer: PostgreSQL CPU per round (and per message) to deduplicate, number and project new text messages (20 accounts, 1,000 contacts).");
        await output.WriteLineAsync();
        await output.WriteLineAsync("| messages per round | CPU per round | per message | events written per message |");
        await output.WriteLineAsync("|---|---|---|---|");
        foreach (int size in (int[])[1, 10, 50, 100, 1000, 5000])
        {
            (double perRound, double events) = await SequencerCostAsync(writer, size);
            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"| {size} | {perRound:F0} µs | {perRound / size:F1} µs | {events:F1} |"));
        }

        await output.WriteLineAsync();
        await output.WriteLineAsync("History statements: PostgreSQL CPU per statement (and per message) to project a backfill's text messages (one account, threads of 20 messages with 50 contacts a chunk).");
        await output.WriteLineAsync();
        await output.WriteLineAsync("| history messages per statement | CPU per statement | per message | events written per message |");
        await output.WriteLineAsync("|---|---|---|---|");
        foreach (int size in (int[])[1, 25, 50, 100, 500])
        {
            (double perRound, double events) = await SequencerCostAsync(writer, size, history: true);
            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"| {size} | {perRound:F0} µs | {perRound / size:F1} µs | {events:F1} |"));
        }

        await output.WriteLineAsync();
        await output.WriteLineAsync("Inside one sequencer round of 1,000 new messages (EXPLAIN ANALYZE; times include the instrumentation's overhead):");
        await output.WriteLineAsync();
        await ExplainRoundAsync(writer, 1000, history: false, output);
        await output.WriteLineAsync();
        await output.WriteLineAsync("Inside one history statement of 50 messages:");
        await output.WriteLineAsync();
        await ExplainRoundAsync(writer, 50, history: true, output);
        return 0;
    }

    private static async Task<double> AppendCostAsync(string database, int size, bool useCopy)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        int pid = await BackendAsync(connection);
        await using InboxAppender appender = await InboxAppender.PrepareAsync(connection);
        List<ParsedWebhook> batch = [.. Enumerable.Range(0, size).Select(i => Parse(i))];
        int iterations = Math.Max(200, 20_000 / size);
        for (int warm = 0; warm < 5; warm++)
        {
            await AppendAsync();
        }

        double before = BackendCpuSeconds(pid);
        for (int i = 0; i < iterations; i++)
        {
            await AppendAsync();
        }

        double perBatch = (BackendCpuSeconds(pid) - before) * 1e6 / iterations;
        await ExecuteAsync(connection, "DELETE FROM inbox");
        await ExecuteAsync(connection, "VACUUM inbox");

        return perBatch;

        async Task AppendAsync()
        {
            if (!useCopy)
            {
                await appender.AppendAsync(batch);
                return;
            }

            // As the gateway's InboxAppender does: rows encoded into one buffer, sent by raw binary COPY.
            using var copy = new BinaryCopyBuffer(batch.Count * InboxRow.TypicalBinaryBytes);
            foreach (ParsedWebhook webhook in batch)
            {
                InboxRow.WriteBinary(copy, null, webhook.Arena, in webhook[0]);
            }

            await copy.CopyAsync(connection, InboxSql.Copy);
        }
    }

    private static async Task<(double PerRound, double EventsPerMessage)> SequencerCostAsync(string database, int size, bool history = false)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        int pid = await BackendAsync(connection);
        int rounds = Math.Clamp(20_000 / size, 4, 300);
        await FillAsync(connection, size * (rounds + 3), history);
        // The statements the sequencer runs for these records: the plain one for live text messages, the general one
        // (live records at 0) for history records.
        await using var drain = new NpgsqlCommand(history ? SequencerSql.Drain : SequencerSql.DrainPlain, connection);
        drain.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = [.. Enumerable.Range(0, SequencerSql.ShardCount)] });
        drain.Parameters.Add(new NpgsqlParameter<int> { TypedValue = history ? 0 : size });
        if (history)
        {
            drain.Parameters.Add(new NpgsqlParameter<int> { TypedValue = size });
        }
        await drain.PrepareAsync();
        for (int warm = 0; warm < 3; warm++)
        {
            await drain.ExecuteNonQueryAsync();
        }

        long events = 0;
        double before = BackendCpuSeconds(pid);
        for (int round = 0; round < rounds; round++)
        {
            await using NpgsqlDataReader reader = await drain.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                events += reader.GetInt16(2) == 0 ? 0 : 1;
            }
        }

        return ((BackendCpuSeconds(pid) - before) * 1e6 / rounds, events / (double)(rounds * size));
    }

    /// <summary>Every shard, as an array literal.</summary>
    private static readonly string Shards = "{" + string.Join(',', Enumerable.Range(0, SequencerSql.ShardCount)) + "}";

    private static async Task ExplainRoundAsync(string database, int size, bool history, TextWriter output)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await FillAsync(connection, size, history);
        await using var explain = new NpgsqlCommand(
            history
                ? $"PREPARE round_{size}(int[], int, int) AS {SequencerSql.Drain}; EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE round_{size}('{Shards}', 0, {size})"
                : $"PREPARE round_{size}(int[], int) AS {SequencerSql.DrainPlain}; EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE round_{size}('{Shards}', {size})", connection);
        string plan = (string)(await explain.ExecuteScalarAsync())!;
        JsonElement root = JsonDocument.Parse(plan).RootElement[0];
        await output.WriteLineAsync("| part of the statement | rows | ms (inclusive) |");
        await output.WriteLineAsync("|---|---|---|");
        foreach (JsonElement part in root.GetProperty("Plan").GetProperty("Plans").EnumerateArray())
        {
            string name = part.TryGetProperty("Subplan Name", out JsonElement subplan) ? subplan.GetString()! : part.GetProperty("Node Type").GetString()!;
            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"| {name} ({part.GetProperty("Node Type").GetString()}{(part.TryGetProperty("Relation Name", out JsonElement relation) ? " " + relation.GetString() : "")}) | {part.GetProperty("Actual Rows").GetDouble():F0} | {part.GetProperty("Actual Total Time").GetDouble():F1} |"));
        }

        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"| whole statement | | {root.GetProperty("Execution Time").GetDouble():F1} |"));
    }

    /// <summary>
    /// Inbox records of new text messages, as the gateway appends them (via SQL, for speed): live ones over 20 accounts,
    /// or a backfill's of one account, shaped as the load tool's (threads of 20 alternating messages, the user's and
    /// the business's, 50 contacts per chunk of 1,000).
    /// </summary>
    private static async Task FillAsync(NpgsqlConnection connection, int records, bool history = false)
    {
        if (history)
        {
            // A history message with the columns the parser fills for one: origin 2 (history), 4 when the business sent it.
            await using var backfill = new NpgsqlCommand("""
                INSERT INTO inbox (kind, flags, account, display_phone, waba_id, msg_id, wa_id, contact, to_id, hstatus, ts, type, body, payload)
                SELECT 1, CASE WHEN g % 2 = 0 THEN 2 ELSE 6 END, 'PNhistory', '15550001111', 'WABA1', 'wamid.backfill.' || g || '.' || gen_random_uuid(),
                       CASE WHEN g % 2 = 0 THEN '4917' || ((g / 20) % 50) ELSE '15550001111' END, '4917' || ((g / 20) % 50),
                       CASE WHEN g % 2 = 0 THEN NULL ELSE '4917' || ((g / 20) % 50) END, CASE WHEN g % 2 = 0 THEN 'READ' ELSE 'DELIVERED' END,
                       1680000000 + g, 'text', 'an old question about the order',
                       convert_to('{"from":"4917' || ((g / 20) % 50) || '","id":"wamid.backfill.' || g || '","timestamp":"' || (1680000000 + g) || '","type":"text","text":{"body":"an old question about the order"},"history_context":{"status":"READ"}}', 'UTF8')
                FROM generate_series(1, $1) AS g
                """, connection);
            backfill.Parameters.Add(new NpgsqlParameter<int> { TypedValue = records });
            await backfill.ExecuteNonQueryAsync();
            await ExecuteAsync(connection, "VACUUM ANALYZE inbox");
            return;
        }

        await using var fill = new NpgsqlCommand("""
            INSERT INTO inbox (kind, account, display_phone, waba_id, msg_id, wa_id, contact, ts, type, body, payload)
            SELECT 1, 'PNprofile' || (g % 20), '15550001111', 'WABA1', 'wamid.HBgLMTU1NTAwMDAxMTEVAgASGBQzQUZCNkY4QjU2RDg4RjM3.' || gen_random_uuid(),
                   '4915' || (g % 1000), '4915' || (g % 1000), 1700000000 + g, 'text', 'Hello, is this still available? I would like to order two.',
                   convert_to('{"from":"4915' || (g % 1000) || '","id":"wamid.HBgL' || g || '","timestamp":"1700000000","text":{"body":"' || repeat('x', 450) || '"},"type":"text"}', 'UTF8')
            FROM generate_series(1, $1) AS g
            """, connection);
        fill.Parameters.Add(new NpgsqlParameter<int> { TypedValue = records });
        await fill.ExecuteNonQueryAsync();
        await ExecuteAsync(connection, "VACUUM ANALYZE inbox");
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static ParsedWebhook Parse(int i)
    {
        var webhook = new ParsedWebhook();
        byte[] body = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope($"PNprofile{i % 20}", messages:
            [WebhookPayloads.TextMessage($"wamid.HBgLMTU1NTAwMDAxMTEVAgASGBQzQUZCNkY4QjU2RDg4RjM3.{i}", $"4915{i % 1000}", 1700000000 + i, "Hello, is this still available? I would like to order two.")]));
        if (WebhookPayloadReader.Parse(body, webhook) != Webhooks.WebhookRejectionReason.None)
        {
            throw new InvalidOperationException("The profile's own payload does not parse.");
        }

        return webhook;
    }

    private static async Task<int> BackendAsync(NpgsqlConnection connection)
    {
        await using var command = new NpgsqlCommand("SELECT pg_backend_pid()", connection);
        return (int)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>User + system CPU of one PostgreSQL backend process so far (/proc counts in 1/100 s).</summary>
    private static double BackendCpuSeconds(int pid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
    }
}
