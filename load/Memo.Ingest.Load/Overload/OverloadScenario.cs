using System.Globalization;
using System.Net;
using System.Text;
using Memo.Ingest.Load.OpenModel;
using Memo.Ingest.TestSupport;
using Npgsql;

namespace Memo.Ingest.Load.Overload;

/// <summary>
/// Load beyond capacity against one gateway process: a moderate open-model rate, then several times what the box
/// can commit, then the moderate rate again. Shows that the excess is refused with 503 and Retry-After (never another
/// error), that what is accepted is answered within a bound, that memory stays bounded (peak RSS), that throughput
/// comes back when the load drops, and that every acknowledged message is stored once.
/// </summary>
internal sealed class OverloadScenario(OverloadSettings settings)
{
    public async Task<int> RunAsync(TextWriter report)
    {
        await using PostgresServer postgres = await PostgresServer.StartAsync();
        string database = await postgres.CreateDatabaseAsync("overload");
        await using GatewayProcess gateway = await GatewayProcess.StartAsync(database, PostgresServer.FreePort(), nativeBinary: settings.NativeBinary,
            environment: settings.GatewaySettings);
        long idleRss = gateway.ResidentBytes;

        LoadStep[] steps =
        [
            new("normal", settings.NormalRate, TimeSpan.FromSeconds(settings.NormalSeconds)),
            new("overload", settings.OverloadRate, TimeSpan.FromSeconds(settings.OverloadSeconds)),
            new("normal again", settings.NormalRate, TimeSpan.FromSeconds(settings.RecoverySeconds)),
        ];
        using var sender = new OpenModelSender(gateway.Address, settings.Connections, Request, static _ => 1);
        // RSS per step (the highest sample while it ran): bounded memory shows as a plateau, not a climb.
        var rssByStep = new long[steps.Length];
        int currentStep = 0;
        using var sampler = new Timer(_ => rssByStep[Volatile.Read(ref currentStep)] = Math.Max(rssByStep[Volatile.Read(ref currentStep)], gateway.ResidentBytes), null, 0, 250);
        var scrapes = new AckHistogram[steps.Length + 1];
        RequestSample[] samples = await sender.RunAsync(steps, async (step, _) =>
        {
            Volatile.Write(ref currentStep, step);
            scrapes[step] = await AckHistogram.ScrapeAsync(gateway.Client);
        });
        long peakRss = gateway.PeakResidentBytes;
        scrapes[^1] = await AckHistogram.ScrapeAsync(gateway.Client);

        var violations = new List<string>();
        report.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Overload: one gateway ({(settings.NativeBinary is null ? "JIT" : "native")}{string.Concat(settings.GatewaySettings.Select(static s => $", {s.Key}={s.Value}"))}), " +
            $"open model over {settings.Connections} keep-alive connections, one message per POST."));
        report.WriteLine();
        report.WriteLine("Latencies as the sender saw them run from each request's intended send time, so they include waiting for one of");
        report.WriteLine("the sender's connections; the gateway's own acknowledgement p99 comes from its histogram (scraped at step boundaries).");
        report.WriteLine();
        report.WriteLine("| step | offered/s | requests | 200 | 503 (with Retry-After) | other | accepted/s | accepted latency (sender) | gateway ack p50 / p99 | 503 latency (sender) | gateway RSS (max) |");
        report.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|");
        for (int step = 0; step < steps.Length; step++)
        {
            RequestSample[] ofStep = [.. samples.Where(s => s.Step == step)];
            int ok = ofStep.Count(static s => s.Status == 200);
            int unavailable = ofStep.Count(static s => s.Status == 503);
            int withRetryAfter = ofStep.Count(static s => s.Status == 503 && s.HasRetryAfter);
            int other = ofStep.Length - ok - unavailable;
            report.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {steps[step].Name} | {steps[step].Rate:F0} | {ofStep.Length} | {ok} | {unavailable} ({withRetryAfter}) | {other} | {ok / steps[step].AnsweredSeconds(ofStep):F0} | " +
                $"{LatencySummary.Of(ofStep.Where(static s => s.Status == 200).Select(static s => s.LatencyMicroseconds))} | " +
                $"{scrapes[step + 1].QuantileSince(scrapes[step], 0.5)} / {scrapes[step + 1].QuantileSince(scrapes[step], 0.99)} | " +
                $"{LatencySummary.Of(ofStep.Where(static s => s.Status == 503).Select(static s => s.LatencyMicroseconds))} | {rssByStep[step] / 1048576.0:F0} MiB |"));
            if (other > 0)
            {
                violations.Add($"{steps[step].Name}: {other} answers were neither 200 nor 503 ({string.Join(", ", ofStep.Where(static s => s.Status is not (200 or 503)).GroupBy(static s => s.Status).Select(static g => $"{g.Key}×{g.Count()}"))})");
            }

            if (withRetryAfter != unavailable)
            {
                violations.Add($"{steps[step].Name}: {unavailable - withRetryAfter} answers 503 without Retry-After");
            }
        }

        // Recovery: once the backlog of the overload has drained, the last quarter of the last step is served in full.
        RequestSample[] settled = [.. samples.Where(s => s.Step == steps.Length - 1).OrderBy(static s => s.IntendedMicroseconds).Skip((int)(steps[^1].Requests * 3 / 4))];
        if (settled.Any(static s => s.Status != 200))
        {
            violations.Add($"after the load dropped, {settled.Count(static s => s.Status != 200)} of the last {settled.Length} requests were not accepted");
        }

        int refused = samples.Count(static s => s.Status == 503);
        if (refused == 0)
        {
            report.WriteLine("Note: nothing was refused; the overload rate was within this machine's capacity.");
        }

        // Every acknowledged message is stored once, and nothing refused was stored.
        long stored;
        await using (var connection = new NpgsqlConnection(database))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT count(*) FROM messages", connection);
            stored = (long)(await command.ExecuteScalarAsync())!;
        }

        int acknowledged = samples.Count(static s => s.Status == 200);
        if (stored != acknowledged)
        {
            violations.Add($"{acknowledged} messages acknowledged, {stored} stored");
        }

        report.WriteLine();
        report.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Gateway RSS: {idleRss / 1048576.0:F0} MiB idle, peak {peakRss / 1048576.0:F0} MiB (VmHWM). Acknowledged {acknowledged}, stored {stored}, refused with 503 {refused}."));
        if (peakRss > settings.MaxPeakRssBytes)
        {
            violations.Add($"peak RSS {peakRss / 1048576} MiB is above the bound of {settings.MaxPeakRssBytes / 1048576} MiB");
        }

        report.WriteLine(violations.Count == 0 ? "Overload checks passed." : "FAILED: " + string.Join("; ", violations));
        return violations.Count == 0 ? 0 : 1;
    }

    private static HttpRequestMessage Request(long index)
    {
        byte[] body = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope($"PNovl{index % 8}",
            messages: [WebhookPayloads.TextMessage($"wamid.ovl.{index}", "4915", 1700000000 + index, "overload")]));
        return WebhookRequest.Create(body, GatewayHost.Secret);
    }
}
