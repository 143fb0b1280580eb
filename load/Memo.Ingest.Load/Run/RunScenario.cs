using System.Diagnostics;
using System.Globalization;
using Memo.Ingest.Load.ClosedLoop;
using Memo.Ingest.Load.OpenModel;
using Memo.Ingest.TestSupport;

namespace Memo.Ingest.Load.Run;

/// <summary>
/// A load run against one gateway process with its own PostgreSQL and Redis: an open-model sender posts the
/// <see cref="PayloadMix"/> at each step's rate while a <see cref="SubscriberFleet"/> follows the accounts live; then a
/// loss check through the sync API. Reports per step: answers, acknowledged messages per second, acknowledgement
/// latency as the sender saw it (from the intended send time) and as the gateway measured it, webhook → event latency
/// at the subscribers, and the CPU the gateway and PostgreSQL used.
/// </summary>
internal sealed class RunScenario(RunSettings settings, bool strict)
{
    /// <summary>The figures of the last run, for commands that compare them with a ceiling.</summary>
    public RunReport? Report { get; private set; }

    public async Task<int> RunAsync(TextWriter console)
    {
        await using PostgresServer postgres = await PostgresServer.StartAsync();
        // A fresh cluster creates every 16 MB WAL segment while committers wait: measure the gateway against a server
        // in service instead (docs/PERFORMANCE.md, issue 16).
        await postgres.WarmWalAsync();
        await postgres.TimeWalFlushesAsync();

        await using RedisServer? redis = settings.WithRedis ? await RedisServer.StartAsync() : null;
        string database = await postgres.CreateDatabaseAsync("load");
        await using GatewayProcess gateway = await GatewayProcess.StartAsync(database, PostgresServer.FreePort(), redis?.ConnectionString,
            nativeBinary: settings.NativeBinary, environment: settings.GatewaySettings);
        if (redis is not null)
        {
            await gateway.WaitForRedisAsync();
        }

        var mix = new PayloadMix(settings);
        // A history backfill (coexistence) beside the live load: what it must not do is slow the live traffic down.
        BackfillSender? backfill = settings.BackfillMessages > 0 ? BackfillSender.Prepare(gateway.Address, settings.BackfillMessages) : null;
        var clock = Stopwatch.StartNew();
        LoadStep[] steps = settings.IsClosedLoop
            ?
            [
                .. settings.WarmUpSeconds > 0 ? [LoadStep.ClosedLoop(settings.ClosedLoop[0], settings.WarmUpSeconds, warmUp: true)] : Array.Empty<LoadStep>(),
                .. settings.ClosedLoop.Select(connections => LoadStep.ClosedLoop(connections, settings.StepSeconds)),
            ]
            :
            [
                .. settings.WarmUpSeconds > 0 ? [LoadStep.WarmUpAt(settings.Rates[0], settings.WarmUpSeconds)] : Array.Empty<LoadStep>(),
                .. settings.Rates.Select(rate => LoadStep.At(rate, settings.StepSeconds)),
            ];
        // Only subscribers read a message's send time: without them, every body is signed before the run.
        PreparedRequests Prepare() => PreparedRequests.Make(steps.Sum(static s => s.Requests),
            index => mix.Body(index, settings.Subscribers > 0 ? PreparedRequests.StampPlaceholder : PreparedRequests.UnreadStamp), GatewayHost.Secret,
            gateway.Address, WebhookRequest.Path);
        IOpenModelSender sender = (settings.IsClosedLoop, settings.Client) switch
        {
            (true, _) => new SocketClosedLoopSender(gateway.Address, Prepare(), mix.MessageCount, clock),
            (false, OpenModelClient.Sockets) => new SocketOpenModelSender(gateway.Address, settings.Connections, Prepare(), mix.MessageCount, clock),
            _ => new OpenModelSender(gateway.Address, settings.Connections,
                index => WebhookRequest.Create(mix.Body(index, (long)clock.Elapsed.TotalMicroseconds), GatewayHost.Secret), mix.MessageCount, clock),
        };
        using var disposeSender = sender as IDisposable;
        await using SubscriberFleet? fleet = settings.Subscribers > 0
            ? await SubscriberFleet.ConnectAsync(gateway.Address, mix.Accounts, settings.Subscribers, clock)
            : null;

        var boundaries = new List<StepBoundary>();
        async Task MarkAsync()
        {
            long at = (long)clock.Elapsed.TotalMicroseconds;
            string metrics = await gateway.Client.GetStringAsync("/metrics"); // one scrape for the histograms and the rounds
            boundaries.Add(new StepBoundary(at, GatewayHistogram.Parse(metrics), GatewayHistogram.Parse(metrics, GatewayHistogram.VisibilityDelay, GatewayHistogram.LiveLane),
                SequencerRounds.Parse(metrics),
                ProcessCpu.Seconds(gateway.ProcessId), ProcessCpu.Seconds(postgres.ProcessId), Environment.CpuUsage.TotalTime.TotalSeconds, MachineCpu.Now(),
                await WalFlushes.ReadAsync(postgres.AdminConnectionString), await SequencerBackends.ReadAsync(postgres.AdminConnectionString, boundaries.LastOrDefault()?.Sequencer)));
        }

        long runStart = (long)clock.Elapsed.TotalMicroseconds;
        backfill?.Start(clock);
        RequestSample[] samples = await sender.RunAsync(steps, async (_, _) => await MarkAsync());
        await MarkAsync();
        string? backfilled = backfill is null ? null : await backfill.CompleteAsync();
        // Acknowledged means in the inbox; the loss check reads what the sequencers have made visible.
        await SequencedWait.UntilSequencedAsync(database, 300);
        if (backfill is not null)
        {
            (long stored, double seconds) = await HistorySequencedAsync(database);
            backfilled += string.Create(CultureInfo.InvariantCulture,
                $"; all {stored:N0} stored once, sequenced within {seconds:F1} s from the first history event to the last ({stored / Math.Max(seconds, 1e-3):N0} messages/s)");
            if (stored != backfill.Messages)
            {
                await console.WriteLineAsync($"FAILED: backfill: {stored} history messages stored, {backfill.Messages} acknowledged");
                return 1;
            }
        }
        await Task.Delay(TimeSpan.FromSeconds(2)); // the last events reach the subscribers

        LossCheck.Result loss = await LossCheck.RunAsync(gateway.Address, mix, samples);
        var report = Report = new RunReport(settings, steps, samples, boundaries, runStart, fleet, loss);
        string directory = settings.ReportDirectory ?? Path.Combine("artifacts", "load", DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture));
        await report.WriteAsync(directory);
        await console.WriteLineAsync(report.Markdown());
        if (backfilled is not null)
        {
            await console.WriteLineAsync("Backfill beside the run: " + backfilled);
            await File.AppendAllTextAsync(Path.Combine(directory, "report.md"), "\nBackfill beside the run: " + backfilled + "\n");
        }

        await console.WriteLineAsync($"Report: {Path.Combine(directory, "report.md")} (+ report.json, report.svg)");

        var failures = new List<string>();
        if (!loss.Passed)
        {
            failures.Add($"loss check: {loss.Missing} missing, {loss.Duplicated} duplicated, {loss.Unexpected} stored but refused");
        }

        if (fleet is { OrderViolations: > 0 })
        {
            failures.Add($"{fleet.OrderViolations} events out of order or missing at the subscribers");
        }

        if (fleet is { Failed: > 0 })
        {
            failures.Add($"{fleet.Failed} subscribers lost their stream");
        }

        if (fleet is not null && await fleet.UnequalAccountsAsync(TimeSpan.FromSeconds(10)) is var unequal and > 0)
        {
            failures.Add($"{unequal} accounts whose subscribers received different numbers of events");
        }

        int unexpected = samples.Count(static s => s.Status != 200);
        if (strict && unexpected > 0)
        {
            failures.Add($"{unexpected} answers were not 200 ({string.Join(", ", samples.Where(static s => s.Status != 200).GroupBy(static s => s.Status).Select(static g => $"{g.Key}×{g.Count()}"))})");
        }

        await console.WriteLineAsync(failures.Count == 0 ? "Load run checks passed." : "FAILED: " + string.Join("; ", failures));
        return failures.Count == 0 ? 0 : 1;
    }

    /// <summary>History messages stored, and the time between the backfill's first and last committed event.</summary>
    private static async Task<(long Stored, double Seconds)> HistorySequencedAsync(string database)
    {
        await using var connection = new Npgsql.NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var query = new Npgsql.NpgsqlCommand($"""
            SELECT (SELECT count(*) FROM messages WHERE origin = 'history'),
                   (SELECT COALESCE(extract(epoch FROM max(committed_at) - min(committed_at)), 0)::float8
                    FROM account_events WHERE account = '{BackfillSender.Account}')
            """, connection);
        await using Npgsql.NpgsqlDataReader reader = await query.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetDouble(1));
    }
}

/// <summary>What was measured at a step boundary: time, the gateway's histograms and its sequencers' live rounds so far,
/// CPU seconds used so far (the load tool's own: its sender and subscribers, not its child processes; and the
/// machine's), PostgreSQL's WAL flushes so far, and the sequencer's backends' time on and waiting for a core.</summary>
internal sealed record StepBoundary(long AtMicroseconds, GatewayHistogram Histogram, GatewayHistogram Visibility, SequencerRounds Rounds, double GatewayCpuSeconds,
    double PostgresCpuSeconds, double LoadToolCpuSeconds, MachineCpu Machine, WalFlushes Wal, SequencerBackends Sequencer);
