using System.Diagnostics;
using System.Globalization;
using System.Text;
using Memo.Ingest.Load.Run;
using Memo.Ingest.TestSupport;

namespace Memo.Ingest.Load.Ceilings;

/// <summary>
/// Each gateway figure beside the ceiling of the machine measured in the same command, round after round, with
/// medians: durable ingest of 50-message POSTs against raw binary COPY of the same message rows; webhooks/s of the
/// gateway against a bare Kestrel endpoint that only checks the HMAC (both with wrk); and event deliveries/s to
/// subscribers of one account against a bare WebSocket broadcast.
/// </summary>
internal sealed class CeilingsCommand(string which, int rounds, int seconds, string? nativeBinary, TextWriter output)
{
    public async Task<int> RunAsync()
    {
        switch (which)
        {
            case "copy": await CopyAsync(); break;
            case "http": await HttpAsync(); break;
            case "broadcast": await BroadcastAsync(); break;
            default: throw new ArgumentException($"Unknown ceiling {which}: copy, http or broadcast.");
        }

        return 0;
    }

    private async Task CopyAsync()
    {
        var oneWriter = new List<double>();
        var twoWriters = new List<double>();
        var ingest = new List<double>();
        for (int round = 1; round <= rounds; round++)
        {
            await using (PostgresServer postgres = await PostgresServer.StartAsync())
            {
                oneWriter.Add(await CopyCeiling.RowsPerSecondAsync(await postgres.CreateDatabaseAsync("copy1"), 1, TimeSpan.FromSeconds(seconds)));
                twoWriters.Add(await CopyCeiling.RowsPerSecondAsync(await postgres.CreateDatabaseAsync("copy2"), 2, TimeSpan.FromSeconds(seconds)));
            }

            // Offered at and above what commits here (about 12,000 messages/s), so the figure is the gateway's
            // ceiling rather than the offered rate, without a backlog that outlasts the senders' timeout.
            var run = new RunScenario(new RunSettings
            {
                // Text messages only: the same rows the COPY driver writes.
                Rates = [240], StepSeconds = seconds, MessagesPerPost = 50, TextShare = 1, DuplicateRatio = 0, StatusRatio = 0, Connections = 512,
                NativeBinary = nativeBinary, ReportDirectory = Path.Combine("artifacts", "load", $"copy-ingest-{round}"),
            }, strict: false);
            await run.RunAsync(TextWriter.Null);
            ingest.Add(run.Report!.PeakMessagesPerSecond);
            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"round {round}: COPY 1 writer {oneWriter[^1]:F0} rows/s, 2 writers {twoWriters[^1]:F0} rows/s; gateway ingest {ingest[^1]:F0} messages/s (50 per POST)"));
        }

        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"median of {rounds}: COPY 1 writer {Median(oneWriter):F0} rows/s, 2 writers {Median(twoWriters):F0} rows/s; gateway {Median(ingest):F0} messages/s = " +
            $"{Median(ingest) / Median(twoWriters):F2}× the 2-writer ceiling ({Median(ingest) / Median(oneWriter):F2}× one writer)"));
    }

    private async Task HttpAsync()
    {
        byte[] body = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope("PNwrk", messages: [WebhookPayloads.TextMessage("wamid.wrk", "4917000001", 1700000000, "hello")]));
        string script = Path.Combine(Path.GetTempPath(), $"memo-wrk-{Environment.ProcessId}.lua");
        await File.WriteAllTextAsync(script,
            $"wrk.method = \"POST\"\nwrk.body = '{Encoding.UTF8.GetString(body)}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n" +
            $"wrk.headers[\"X-Hub-Signature-256\"] = \"{WebhookSigner.Sign(body, GatewayHost.Secret)}\"\n");
        var bare = new List<double>();
        var gateway = new List<double>();
        try
        {
            for (int round = 1; round <= rounds; round++)
            {
                int port = PostgresServer.FreePort();
                await using (Microsoft.AspNetCore.Builder.WebApplication server = await BareHmacServer.StartAsync(port))
                {
                    bare.Add(await WrkAsync($"http://127.0.0.1:{port}/webhooks/whatsapp", script));
                }

                await using PostgresServer postgres = await PostgresServer.StartAsync();
                await using RedisServer redis = await RedisServer.StartAsync();
                await using GatewayProcess process = await GatewayProcess.StartAsync(await postgres.CreateDatabaseAsync("wrk"), PostgresServer.FreePort(),
                    redis.ConnectionString, nativeBinary: nativeBinary);
                await process.WaitForRedisAsync();
                gateway.Add(await WrkAsync(new Uri(process.Address, "/webhooks/whatsapp").ToString(), script));
                await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"round {round}: bare HMAC endpoint {bare[^1]:F0} req/s; gateway (the same signed webhook: verify, parse, screened by Redis, 200) {gateway[^1]:F0} req/s"));
            }
        }
        finally
        {
            File.Delete(script);
        }

        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"median of {rounds}: bare {Median(bare):F0} req/s, gateway {Median(gateway):F0} req/s = {Median(gateway) / Median(bare):F2}× the bare endpoint"));
    }

    private async Task BroadcastAsync()
    {
        var bare = new List<double>();
        var gateway = new List<double>();
        for (int round = 1; round <= rounds; round++)
        {
            bare.Add(await BareBroadcast.DeliveriesPerSecondAsync(PostgresServer.FreePort(), 1000, TimeSpan.FromSeconds(seconds)));
            var run = new RunScenario(new RunSettings
            {
                // One account's events, at a rate its ingest sustains (every batch locks that account, so one account
                // cannot use both writers): the figure is bounded by that rate, not by the fan-out.
                Rates = [300], StepSeconds = seconds, Accounts = 1, Subscribers = 1000, DuplicateRatio = 0, StatusRatio = 0, Connections = 256,
                NativeBinary = nativeBinary, ReportDirectory = Path.Combine("artifacts", "load", $"broadcast-{round}"),
            }, strict: false);
            await run.RunAsync(TextWriter.Null);
            gateway.Add(run.Report!.SubscriberDeliveriesPerSecond);
            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"round {round}: bare broadcast {bare[^1]:F0} deliveries/s (1,000 clients, 300 B); gateway {gateway[^1]:F0} deliveries/s (1,000 subscribers of one account)"));
        }

        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"median of {rounds}: bare {Median(bare):F0}/s, gateway {Median(gateway):F0}/s = {Median(gateway) / Median(bare):F2}× the bare broadcast"));
    }

    private async Task<double> WrkAsync(string url, string script)
    {
        var start = new ProcessStartInfo("wrk") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in (string[])["-t2", "-c64", $"-d{seconds}s", "-s", script, url])
        {
            start.ArgumentList.Add(argument);
        }

        using Process wrk = Process.Start(start) ?? throw new InvalidOperationException("wrk did not start (apt-get install wrk).");
        string text = await wrk.StandardOutput.ReadToEndAsync();
        await wrk.WaitForExitAsync();
        string? line = text.Split('\n').FirstOrDefault(static l => l.StartsWith("Requests/sec:", StringComparison.Ordinal));
        return line is null ? throw new InvalidOperationException("wrk printed no rate:\n" + text) : double.Parse(line["Requests/sec:".Length..].Trim(), CultureInfo.InvariantCulture);
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);
}
