using System.Diagnostics;
using System.Net;
using Memo.Ingest.TestSupport;
using Npgsql;

namespace Memo.Ingest.Load.Faults;

/// <summary>
/// The fault suite (docs/RELIABILITY.md): two gateway processes share PostgreSQL and Redis under steady Meta-like
/// traffic while, one phase at a time, the first gateway is SIGKILLed and restarted, PostgreSQL is stopped and
/// started, PostgreSQL crashes (immediate stop) and recovers, Redis is stopped and started, and the second gateway is
/// killed. After each phase the traffic drains and
/// the ledger is checked: every acknowledged message stored exactly once, every delivery eventually acknowledged,
/// nothing stored that was not, no 500, seqs dense and increasing per account, and cursor readers that followed the
/// sync API through it all saw every row once, in order.
/// </summary>
internal sealed class FaultSuite(FaultSettings settings)
{
    private static readonly string[] Accounts = ["PNfault1", "PNfault2", "PNfault3", "PNfault4"];

    private readonly int[] _ports = [PostgresServer.FreePort(), PostgresServer.FreePort()];
    private readonly GatewayProcess?[] _gateways = new GatewayProcess?[2];
    private PostgresServer _postgres = null!;
    private RedisServer _redis = null!;
    private string _database = null!;
    private MetaTraffic? _traffic;

    /// <summary>New messages acknowledged so far (duplicates not counted).</summary>
    private int AcknowledgedMessages => _traffic!.Acknowledged.Count;

    public async Task<int> RunAsync(TextWriter report)
    {
        await using (_postgres = await PostgresServer.StartAsync())
        await using (_redis = await RedisServer.StartAsync())
        {
            _database = await _postgres.CreateDatabaseAsync("faults");
            try
            {
                return await RunPhasesAsync(report);
            }
            finally
            {
                foreach (GatewayProcess? gateway in _gateways)
                {
                    if (gateway is not null)
                    {
                        await gateway.DisposeAsync();
                    }
                }
            }
        }
    }

    private async Task<int> RunPhasesAsync(TextWriter report)
    {
        for (int i = 0; i < _gateways.Length; i++)
        {
            _gateways[i] = await StartGatewayAsync(i);
            await _gateways[i]!.WaitForRedisAsync();
        }

        Uri[] instances = [.. _ports.Select(static port => new Uri($"http://127.0.0.1:{port}"))];
        var readers = Accounts.Select(account => new CursorReader(instances, account)).ToList();
        using var traffic = _traffic = new MetaTraffic(instances, Accounts, settings.DuplicateRatio, settings.PauseMilliseconds);
        var results = new List<PhaseResult>();
        report.WriteLine($"Fault suite: 2 gateways, {settings.Loops} Meta delivery loops, {settings.DuplicateRatio:P0} duplicate deliveries, " +
                         $"{settings.LoadSeconds} s of traffic around each fault, {settings.OutageSeconds} s outages, {settings.Kills} kills.");
        report.WriteLine();
        report.WriteLine(PhaseResult.Header);

        async Task RunAsync(string phase, Func<List<string>, Task<(double? Seconds, string Meaning)>> fault)
        {
            PhaseResult result = await PhaseAsync(phase, traffic, readers, fault);
            results.Add(result);
            report.WriteLine(result.Row());
            await report.FlushAsync();
        }

        await RunAsync($"SIGKILL gateway 1 and restart it, {settings.Kills}×", KillAndRestartAsync);
        await RunAsync($"PostgreSQL stopped for {settings.OutageSeconds} s", violations => PostgresOutageAsync(violations, crash: false));
        await RunAsync($"PostgreSQL crashed (immediate stop) for {settings.OutageSeconds} s", violations => PostgresOutageAsync(violations, crash: true));
        await RunAsync($"Redis stopped for {settings.OutageSeconds} s", RedisOutageAsync);
        await RunAsync("gateway 2 of 2 SIGKILLed, traffic carries on", KillOneOfTwoAsync);

        foreach (CursorReader reader in readers)
        {
            await reader.DisposeAsync();
        }

        report.WriteLine();
        report.WriteLine(results.All(static r => r.Passed) ? "All phases passed." : "FAILED: " + string.Join(", ", results.Where(static r => !r.Passed).Select(static r => r.Phase)));
        return results.All(static r => r.Passed) ? 0 : 1;
    }

    private Task<GatewayProcess> StartGatewayAsync(int index) =>
        GatewayProcess.StartAsync(_database, _ports[index], _redis.ConnectionString, nativeBinary: settings.NativeBinary);

    private async Task<(double?, string)> KillAndRestartAsync(List<string> violations)
    {
        var restarts = new List<double>();
        for (int kill = 0; kill < settings.Kills; kill++)
        {
            await Task.Delay(TimeSpan.FromSeconds(settings.LoadSeconds) / settings.Kills);
            _gateways[0]!.Kill();
            await _gateways[0]!.DisposeAsync();
            var restart = Stopwatch.StartNew();
            _gateways[0] = await StartGatewayAsync(0);
            restarts.Add(restart.Elapsed.TotalSeconds);
        }

        return (restarts.Order().ElementAt(restarts.Count / 2), "restart to ready, median");
    }

    /// <summary>
    /// PostgreSQL goes away under load: a clean stop (sessions cut, as in a failover), or a crash (every process killed
    /// at once, no checkpoint, recovery from the WAL at the next start). Either way, what was acknowledged before is in
    /// the WAL and must be stored exactly once once the server is back.
    /// </summary>
    private async Task<(double?, string)> PostgresOutageAsync(List<string> violations, bool crash)
    {
        await Task.Delay(TimeSpan.FromSeconds(settings.LoadSeconds));
        await (crash ? _postgres.CrashAsync() : _postgres.StopAsync());
        var down = Stopwatch.StartNew();
        if (!await WithinAsync(TimeSpan.FromSeconds(settings.OutageSeconds), async () => (await ReadinessAsync()).All(static r => r == HttpStatusCode.ServiceUnavailable)))
        {
            violations.Add("readiness did not go false while PostgreSQL was down");
        }

        await Task.Delay(TimeSpan.FromSeconds(settings.OutageSeconds) - down.Elapsed is { Ticks: > 0 } left ? left : TimeSpan.Zero);
        int acknowledgedAtRestart = AcknowledgedMessages;
        await _postgres.StartAgainAsync();
        var up = Stopwatch.StartNew();
        if (!await WithinAsync(TimeSpan.FromSeconds(60), () => Task.FromResult(AcknowledgedMessages > acknowledgedAtRestart)))
        {
            violations.Add("no new message acknowledged within 60 s of PostgreSQL's return");
        }

        double recovered = up.Elapsed.TotalSeconds;
        if (!await WithinAsync(TimeSpan.FromSeconds(30), async () => (await ReadinessAsync()).All(static r => r == HttpStatusCode.OK)))
        {
            violations.Add("readiness did not come back within 30 s");
        }

        return (recovered, "PostgreSQL back → first new message acknowledged");
    }

    private async Task<(double?, string)> RedisOutageAsync(List<string> violations)
    {
        await Task.Delay(TimeSpan.FromSeconds(settings.LoadSeconds));
        await _redis.StopAsync();
        int acknowledgedAtStop = AcknowledgedMessages;
        await Task.Delay(TimeSpan.FromSeconds(settings.OutageSeconds));
        if (AcknowledgedMessages <= acknowledgedAtStop)
        {
            violations.Add("ingest stopped while Redis was down");
        }

        await _redis.StartAgainAsync();
        var up = Stopwatch.StartNew();
        if (!await WithinAsync(TimeSpan.FromSeconds(60), async () =>
            {
                foreach (GatewayProcess? gateway in _gateways)
                {
                    if (!(await gateway!.Client.GetStringAsync("/readyz")).Contains("\"redis\":\"connected\"", StringComparison.Ordinal))
                    {
                        return false;
                    }
                }

                return true;
            }))
        {
            violations.Add("the gateways did not reconnect to Redis within 60 s");
        }

        return (up.Elapsed.TotalSeconds, "Redis back → both gateways connected");
    }

    private async Task<(double?, string)> KillOneOfTwoAsync(List<string> violations)
    {
        await Task.Delay(TimeSpan.FromSeconds(settings.LoadSeconds));
        _gateways[1]!.Kill();
        await _gateways[1]!.DisposeAsync();
        _gateways[1] = null;
        var killed = Stopwatch.StartNew();
        int acknowledgedAtKill = AcknowledgedMessages;
        if (!await WithinAsync(TimeSpan.FromSeconds(30), () => Task.FromResult(AcknowledgedMessages > acknowledgedAtKill + settings.Loops)))
        {
            violations.Add("the surviving gateway did not take the traffic");
        }

        return (killed.Elapsed.TotalSeconds, "kill → survivor acknowledged a new message per loop");
    }

    private async Task<PhaseResult> PhaseAsync(string phase, MetaTraffic traffic, List<CursorReader> readers,
        Func<List<string>, Task<(double? Seconds, string Meaning)>> fault)
    {
        Dictionary<int, int> before = traffic.Sender.Outcomes.ToDictionary();
        int acknowledgedBefore = traffic.Acknowledged.Count;
        int duplicatesBefore = traffic.DuplicateDeliveries;
        var violations = new List<string>();

        traffic.Start(phase.Split(' ')[0].ToLowerInvariant() + Environment.TickCount64, settings.Loops);
        (double? recovery, string meaning) = await fault(violations);
        await Task.Delay(TimeSpan.FromSeconds(settings.LoadSeconds));
        if (!await traffic.DrainAsync(TimeSpan.FromSeconds(120)))
        {
            violations.Add($"{traffic.InFlight} deliveries still unacknowledged 120 s after the traffic stopped");
        }

        int Delta(int status) => traffic.Sender.Outcomes.GetValueOrDefault(status) - before.GetValueOrDefault(status);
        if (Delta(500) > 0)
        {
            violations.Add($"{Delta(500)} answers were 500");
        }

        // Acknowledged means in the inbox: the ledger is checked once the sequencers have made it all visible.
        await SequencedWait.UntilSequencedAsync(new NpgsqlConnectionStringBuilder(_database) { Pooling = false }.ConnectionString, 120);
        long stored = await CheckLedgerAsync(traffic, readers, violations);
        return new PhaseResult(phase, traffic.Sender.Attempts - before.Values.Sum(), Delta(200), Delta(503), Delta(500), Delta(RetryingWebhookSender.NoResponse),
            traffic.Acknowledged.Count - acknowledgedBefore, stored, traffic.DuplicateDeliveries - duplicatesBefore, recovery, meaning, violations);
    }

    /// <summary>Every acknowledged message stored once and nothing else; seqs dense; the readers saw every row once in order.</summary>
    private async Task<long> CheckLedgerAsync(MetaTraffic traffic, List<CursorReader> readers, List<string> violations)
    {
        // Unpooled: PostgreSQL restarts during the suite, and a pooled connection would be dead.
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(_database) { Pooling = false }.ConnectionString);
        await connection.OpenAsync();
        var stored = new Dictionary<string, (string Account, long Copies)>();
        await using (var command = new NpgsqlCommand("SELECT wamid, account, count(*) FROM messages GROUP BY wamid, account", connection))
        await using (NpgsqlDataReader rows = await command.ExecuteReaderAsync())
        {
            while (await rows.ReadAsync())
            {
                stored[rows.GetString(0)] = (rows.GetString(1), rows.GetInt64(2));
            }
        }

        int lost = traffic.Acknowledged.Count(pair => !stored.TryGetValue(pair.Key, out var row) || row.Account != pair.Value);
        int extra = stored.Keys.Count(wamid => !traffic.Acknowledged.ContainsKey(wamid));
        int twice = stored.Values.Count(static row => row.Copies > 1);
        if (lost > 0)
        {
            violations.Add($"{lost} acknowledged messages not stored");
        }

        if (extra > 0)
        {
            violations.Add($"{extra} stored messages never acknowledged");
        }

        if (twice > 0)
        {
            violations.Add($"{twice} messages stored more than once");
        }

        foreach (CursorReader reader in readers)
        {
            long latest;
            long events;
            await using (var command = new NpgsqlCommand("SELECT coalesce(max(seq), 0), count(*) FROM account_events WHERE account = $1", connection))
            {
                command.Parameters.Add(new NpgsqlParameter { Value = reader.Account });
                await using NpgsqlDataReader row = await command.ExecuteReaderAsync();
                await row.ReadAsync();
                latest = row.GetInt64(0);
                events = row.GetInt64(1);
            }

            if (events != latest)
            {
                violations.Add($"{reader.Account}: seqs are not dense ({events} events, highest seq {latest})");
            }

            if (!await WithinAsync(TimeSpan.FromSeconds(30), () => Task.FromResult(reader.Cursor >= latest)))
            {
                violations.Add($"{reader.Account}: the cursor reader did not reach seq {latest}");
                continue;
            }

            List<(long Seq, string Wamid)> seen = reader.Seen();
            if (!seen.Zip(seen.Skip(1)).All(static p => p.First.Seq < p.Second.Seq))
            {
                violations.Add($"{reader.Account}: the cursor reader saw seqs go backwards");
            }

            var expected = stored.Where(pair => pair.Value.Account == reader.Account).Select(static pair => pair.Key).ToHashSet();
            if (seen.Count != expected.Count || !expected.SetEquals(seen.Select(static s => s.Wamid)))
            {
                violations.Add($"{reader.Account}: the cursor reader saw {seen.Count} rows, {expected.Count} are stored");
            }
        }

        return stored.Count;
    }

    private async Task<HttpStatusCode[]> ReadinessAsync()
    {
        var statuses = new List<HttpStatusCode>();
        foreach (GatewayProcess? gateway in _gateways)
        {
            if (gateway is null)
            {
                continue;
            }

            try
            {
                using HttpResponseMessage response = await gateway.Client.GetAsync("/readyz");
                statuses.Add(response.StatusCode);
            }
            catch (HttpRequestException)
            {
                statuses.Add(0);
            }
        }

        return [.. statuses];
    }

    private static async Task<bool> WithinAsync(TimeSpan bound, Func<Task<bool>> condition)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < bound)
        {
            if (await condition())
            {
                return true;
            }

            await Task.Delay(100);
        }

        return await condition();
    }
}
