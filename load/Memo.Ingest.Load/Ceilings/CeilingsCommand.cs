using System.Diagnostics;
using System.Globalization;
using System.Text;
using Memo.Ingest.Load.ClosedLoop;
using Memo.Ingest.Load.Run;
using Memo.Ingest.TestSupport;

namespace Memo.Ingest.Load.Ceilings;

/// <summary>
/// Each gateway figure beside the ceiling of the machine measured in the same command, round after round, with
/// medians: durable ingest of 50-message POSTs against raw binary COPY of the same message rows; webhooks/s of the
/// gateway against a bare Kestrel endpoint that only checks the HMAC (both with wrk); event deliveries/s to
/// subscribers of one account against a bare WebSocket broadcast; and the gateway against a conventional
/// one-INSERT-per-message receiver on the same PostgreSQL, in closed loops and by the open model's maximum sustainable
/// rate (beside the bare endpoint's too).
/// </summary>
internal sealed class CeilingsCommand(string which, int rounds, int seconds, string? nativeBinary, TextWriter output, string client = "httpclient",
    IReadOnlyList<double>? rates = null)
{
    /// <summary>The open model's default ladder: from what the conventional receiver takes to beyond what the bare endpoint does here.</summary>
    public static readonly double[] OpenModelRates = [1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000, 12000, 15000, 20000, 25000];

    public async Task<int> RunAsync()
    {
        switch (which)
        {
            case "copy": await CopyAsync(); break;
            case "http": await HttpAsync(); break;
            case "broadcast": await BroadcastAsync(); break;
            case "receiver": await ReceiverAsync(); break;
            case "open": await OpenAsync(); break;
            default: throw new UsageException($"Unknown ceiling {which}: copy, http, broadcast, receiver or open.");
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
                // One account's events (a message and a conversation update per webhook) offered faster than 1,000
                // subscribers can take them from one instance: at 1,000 webhooks/s that is 2M deliveries/s, above the
                // bare broadcast's ceiling, so the figure is the fan-out's. (Before the log-first write path, one
                // account's ingest was capped near 300 webhooks/s, and so was this figure.)
                Rates = [1000], StepSeconds = seconds, Accounts = 1, Subscribers = 1000, DuplicateRatio = 0, StatusRatio = 0, Connections = 256,
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

    /// <summary>
    /// The gateway beside the conventional receiver (<see cref="ConventionalReceiver"/>) on the same PostgreSQL, closed
    /// loops of 1-message POSTs at 16 and 64 connections and of 50-message POSTs at 16, and raw binary COPY of the same
    /// message rows; each round on a fresh server, medians of the rounds. The gateway's "sustained" rate counts until
    /// the sequencers have made the last acknowledged message visible, not only until its 200. Both receivers get the
    /// same client: the HttpClient loop (<see cref="ClosedLoopSender"/>), or with <c>--client wrk</c> wrk over webhooks
    /// signed before the run (<see cref="WrkClosedLoop"/>), which leaves more of the machine to the receivers.
    /// </summary>
    private async Task ReceiverAsync()
    {
        if (client is not ("httpclient" or "wrk"))
        {
            throw new UsageException($"Unknown client {client}: httpclient or wrk.");
        }

        (string Name, int MessagesPerPost, int Connections)[] scenarios = [("1 message per POST, 16 connections", 1, 16),
            ("1 message per POST, 64 connections", 1, 64), ("50 messages per POST, 16 connections", 50, 16)];
        var conventional = scenarios.Select(static _ => new List<ClosedLoopResult>()).ToArray();
        var gateway = scenarios.Select(static _ => new List<ClosedLoopResult>()).ToArray();
        var sustained = scenarios.Select(static _ => new List<double>()).ToArray();
        var conventionalFlushes = scenarios.Select(static _ => new List<WalFlushes>()).ToArray();
        var gatewayFlushes = scenarios.Select(static _ => new List<WalFlushes>()).ToArray();
        var copy = new List<double>();
        for (int round = 1; round <= rounds; round++)
        {
            await using PostgresServer postgres = await PostgresServer.StartAsync();
            await postgres.TimeWalFlushesAsync();
            await using RedisServer redis = await RedisServer.StartAsync();
            copy.Add(await CopyCeiling.RowsPerSecondAsync(await postgres.CreateDatabaseAsync("copy"), 2, TimeSpan.FromSeconds(seconds)));
            for (int s = 0; s < scenarios.Length; s++)
            {
                (string name, int perPost, int connections) = scenarios[s];
                Func<long, byte[]> body = n => ReceiverPayload(round, s, n, perPost);
                // wrk's webhooks are made before the run: more than either receiver can take in the time (a run that
                // needs more fails rather than repeating one).
                using WrkClosedLoop? wrk = client == "wrk"
                    ? await WrkClosedLoop.PrepareAsync(body, (long)seconds * (perPost == 1 ? 25_000 : 1_500), GatewayHost.Secret)
                    : null;

                async Task<ClosedLoopResult> DriveAsync(Uri address)
                {
                    if (wrk is not null)
                    {
                        return await wrk.RunAsync(address, connections, TimeSpan.FromSeconds(seconds), perPost);
                    }

                    using var sender = new ClosedLoopSender(address, connections, body, GatewayHost.Secret);
                    return await sender.RunAsync(TimeSpan.FromSeconds(seconds), perPost);
                }

                await using (BaselineProcess receiver = await BaselineProcess.StartConventionalAsync(await postgres.CreateDatabaseAsync("conventional")))
                {
                    (ClosedLoopResult result, WalFlushes flushes) = await WalFlushes.MeasureAsync(postgres.AdminConnectionString, () => DriveAsync(receiver.Address));
                    conventional[s].Add(result);
                    conventionalFlushes[s].Add(flushes);
                }

                string database = await postgres.CreateDatabaseAsync("gateway");
                await using (GatewayProcess process = await GatewayProcess.StartAsync(database, PostgresServer.FreePort(), redis.ConnectionString, nativeBinary: nativeBinary))
                {
                    await process.WaitForRedisAsync();
                    // The flushes of the acknowledgements (and of the rounds meanwhile), not of the drain after them.
                    (ClosedLoopResult result, WalFlushes flushes) = await WalFlushes.MeasureAsync(postgres.AdminConnectionString, () => DriveAsync(process.Address));
                    gatewayFlushes[s].Add(flushes);
                    var drain = Stopwatch.StartNew();
                    await SequencedWait.UntilSequencedAsync(database, 300);
                    gateway[s].Add(result);
                    sustained[s].Add(result.Messages / (result.Seconds + drain.Elapsed.TotalSeconds));
                }

                await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"round {round}, {name}: conventional {conventional[s][^1].MessagesPerSecond:F0} msgs/s ({conventional[s][^1].Latency}; {conventionalFlushes[s][^1]}); " +
                    $"gateway {gateway[s][^1].MessagesPerSecond:F0} msgs/s acknowledged, {sustained[s][^1]:F0} sustained ({gateway[s][^1].Latency}; {gatewayFlushes[s][^1]}); " +
                    $"{gateway[s][^1].MessagesPerSecond / conventional[s][^1].MessagesPerSecond:F2}×"));
            }

            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"round {round}: raw COPY (2 writers, 5,000-row transactions) {copy[^1]:F0} rows/s"));
        }

        await output.WriteLineAsync();
        await output.WriteLineAsync($"Medians of {rounds} rounds of {seconds} s (closed loops of the {client} client; the gateway with Redis; fresh databases). Ratios are taken");
        await output.WriteLineAsync("within each round (both receivers ran back to back on the same server), then the median of the rounds' ratios.");
        await output.WriteLineAsync();
        await output.WriteLineAsync("| scenario | conventional msgs/s | conventional p50 / p99 ms | gateway msgs/s acknowledged | gateway msgs/s sustained (until visible) | gateway p50 / p99 ms | gateway ÷ conventional, per round (sustained) | median ratio | WAL flushes/s × ms each, conventional · gateway |");
        await output.WriteLineAsync("|---|---|---|---|---|---|---|---|---|");
        for (int s = 0; s < scenarios.Length; s++)
        {
            List<double> ratios = [.. sustained[s].Select((v, round) => v / conventional[s][round].MessagesPerSecond)];
            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"| {scenarios[s].Name} | {Median(conventional[s].Select(static r => r.MessagesPerSecond).ToList()):F0} | " +
                $"{Median(conventional[s].Select(static r => r.Latency.P50).ToList()):F1} / {Median(conventional[s].Select(static r => r.Latency.P99).ToList()):F1} | " +
                $"{Median(gateway[s].Select(static r => r.MessagesPerSecond).ToList()):F0} | {Median(sustained[s]):F0} | " +
                $"{Median(gateway[s].Select(static r => r.Latency.P50).ToList()):F1} / {Median(gateway[s].Select(static r => r.Latency.P99).ToList()):F1} | " +
                $"{string.Join(" / ", ratios.Select(static r => r.ToString("F2", CultureInfo.InvariantCulture)))} | {Median(ratios):F2}× | " +
                $"{FlushFigures(conventionalFlushes[s])} · {FlushFigures(gatewayFlushes[s])} |"));
        }

        List<double> copyRatios = [.. sustained[2].Select((v, round) => v / copy[round])];
        await output.WriteLineAsync();
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"Raw binary COPY of the same message rows (2 writers, 5,000-row transactions): {Median(copy):F0} rows/s; 50-message POSTs sustained ÷ COPY per round: " +
            $"{string.Join(" / ", copyRatios.Select(static r => r.ToString("F3", CultureInfo.InvariantCulture)))}, median {Median(copyRatios):F3}×."));
    }

    /// <summary>Medians of the rounds' WAL flushes: how many a second × how long each took.</summary>
    private static string FlushFigures(List<WalFlushes> rounds) => string.Create(CultureInfo.InvariantCulture,
        $"{Median([.. rounds.Select(static f => f.PerSecond)]):F0} × {Median([.. rounds.Select(static f => f.MillisecondsEach)]):F2}");

    /// <summary>
    /// The open model's maximum sustainable rate (issue 14's third target) beside two baselines on the same box and the
    /// same client: the bare endpoint that only checks the HMAC (what HTTP and the signature alone leave of the two
    /// cores) and the conventional receiver on the same PostgreSQL. Each round climbs the same ladder against all three
    /// (<see cref="OpenModelLadder"/>), in a rotating order; ratios are taken within a round, then their median.
    /// </summary>
    private async Task OpenAsync()
    {
        IReadOnlyList<double> ladder = rates ?? OpenModelRates;
        var settings = new RunSettings { StepSeconds = seconds, NativeBinary = nativeBinary };
        string[] names = ["bare HMAC endpoint", "conventional receiver", "gateway"];
        var maxima = names.Select(static _ => new List<double>()).ToArray();
        // A receiver that held the ladder's top rate has a maximum above it, not at it: shown with "≥".
        bool HeldTop(int receiver, int round) => maxima[receiver][round] == ladder[^1];
        for (int round = 1; round <= rounds; round++)
        {
            await using PostgresServer postgres = await PostgresServer.StartAsync();
            await postgres.WarmWalAsync();
            await using RedisServer redis = await RedisServer.StartAsync();
            for (int k = 0; k < names.Length; k++)
            {
                int which = (k + round - 1) % names.Length;
                LadderResult result;
                switch (which)
                {
                    case 0:
                        await using (BaselineProcess bare = await BaselineProcess.StartBareHmacAsync())
                        {
                            result = await OpenModelLadder.ClimbAsync(bare.Address, bare.ProcessId, null, null, settings, ladder);
                        }

                        break;
                    case 1:
                        await using (BaselineProcess conventional = await BaselineProcess.StartConventionalAsync(await postgres.CreateDatabaseAsync("conventional")))
                        {
                            result = await OpenModelLadder.ClimbAsync(conventional.Address, conventional.ProcessId, postgres.ProcessId, null, settings, ladder);
                        }

                        break;
                    default:
                        string database = await postgres.CreateDatabaseAsync("gateway");
                        await using (GatewayProcess gateway = await GatewayProcess.StartAsync(database, PostgresServer.FreePort(), redis.ConnectionString,
                                         nativeBinary: nativeBinary))
                        {
                            await gateway.WaitForRedisAsync();
                            result = await OpenModelLadder.ClimbAsync(gateway.Address, gateway.ProcessId, postgres.ProcessId, redis.ProcessId, settings, ladder);
                            // The next receiver starts once the sequencer has caught up, not beside its backlog.
                            await SequencedWait.UntilSequencedAsync(database, 300);
                        }

                        break;
                }

                maxima[which].Add(result.MaxSustainableRate);
                await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"round {round}, {names[which]}: maximum sustainable {(HeldTop(which, round - 1) ? "≥ " : "")}{result.MaxSustainableRate:F0} POSTs/s"));
                await output.WriteLineAsync("| offered POSTs/s | 200 | other | messages/s | ack latency (sender) | receiver CPU | PostgreSQL CPU | Redis CPU | load tool CPU | sustainable |");
                await output.WriteLineAsync("|---|---|---|---|---|---|---|---|---|---|");
                for (int i = 0; i < result.Steps.Count; i++)
                {
                    LadderStep step = result.Steps[i];
                    bool triedAgain = !step.Sustainable && i + 1 < result.Steps.Count && result.Steps[i + 1].Rate == step.Rate;
                    await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                        $"| {step.Rate:F0} | {step.Ok} | {step.Other} | {step.MessagesPerSecond:F0} | {step.Latency} | {step.ReceiverCpuPercent:F0}% | " +
                        $"{step.PostgresCpuPercent:F0}% | {step.RedisCpuPercent:F0}% | {step.LoadToolCpuPercent:F0}% | {(step.Sustainable ? "yes" : triedAgain ? "no (measured again)" : "no")} |"));
                }

                await output.WriteLineAsync();
            }
        }

        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"Medians of {rounds} rounds: the default mix of `run`, steps of {seconds} s climbing {string.Join(",", ladder)} POSTs/s until the first miss"));
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"(ack p99 ≤ {settings.P99BoundMilliseconds} ms from the intended send time, only 200s; a step that misses is measured once more), socket client over {settings.Connections} connections;"));
        await output.WriteLineAsync("each step after a warm-up at its rate on its own connections; one PostgreSQL and Redis per round.");
        await output.WriteLineAsync();
        await output.WriteLineAsync("| receiver | maximum sustainable POSTs/s, per round | median | gateway ÷ receiver, per round | median ratio |");
        await output.WriteLineAsync("|---|---|---|---|---|");
        for (int r = 0; r < names.Length; r++)
        {
            int receiver = r;
            string Bound(int round, string above, string below) => HeldTop(receiver, round) ? above : HeldTop(2, round) ? below : "";
            List<double> ratios = [.. maxima[2].Select((g, round) => maxima[receiver][round] == 0 ? double.NaN : g / maxima[receiver][round])];
            string perRound = string.Join(" / ", maxima[r].Select((m, round) => Bound(round, "≥ ", "") + m.ToString("F0", CultureInfo.InvariantCulture)));
            string ratioPerRound = r == 2 ? "–" : string.Join(" / ", ratios.Select((v, round) => Bound(round, "≤ ", "≥ ") + v.ToString("F2", CultureInfo.InvariantCulture)));
            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"| {names[r]} | {perRound} | {Median(maxima[r]):F0} | {ratioPerRound} | {(r == 2 ? "–" : $"{Median(ratios):F2}×")} |"));
        }
    }

    /// <summary>Fresh messages for every POST (no duplicates), over 8 accounts, the same bodies for both receivers.</summary>
    private static byte[] ReceiverPayload(int round, int scenario, long n, int perPost)
    {
        string account = $"PNrecv{n % 8}";
        IEnumerable<string> messages = Enumerable.Range(0, perPost).Select(m => WebhookPayloads.TextMessage(
            string.Create(CultureInfo.InvariantCulture, $"wamid.HBgLMTU1NTAwMDAxMTEVAgASGBQzQUZCNkY4.{round}.{scenario}.{n}.{m}"),
            string.Create(CultureInfo.InvariantCulture, $"4917{(n * 7 + m) % 500:D6}"), 1700000000 + n, "Hello, is this still available? I would like to order two."));
        return Encoding.UTF8.GetBytes(WebhookPayloads.Envelope(account, messages: messages));
    }

    private async Task<double> WrkAsync(string url, string script)
    {
        string text = await Wrk.RunAsync(["-t2", "-c64", $"-d{seconds}s", "-s", script, url]);
        string? line = text.Split('\n').FirstOrDefault(static l => l.StartsWith("Requests/sec:", StringComparison.Ordinal));
        return line is null ? throw new InvalidOperationException("wrk printed no rate:\n" + text) : double.Parse(line["Requests/sec:".Length..].Trim(), CultureInfo.InvariantCulture);
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);
}
