using System.Globalization;
using Memo.Ingest.Load;
using Memo.Ingest.Load.Ceilings;
using Memo.Ingest.Load.ClosedLoop;
using Memo.Ingest.Load.Faults;
using Memo.Ingest.Load.Overload;
using Memo.Ingest.Load.Profile;
using Memo.Ingest.Load.Replies;
using Memo.Ingest.Load.Run;

// dotnet run -c Release --project load/Memo.Ingest.Load -- <scenario> [options]
//   run    [--rates 200,400] [--step-seconds 10] [--warmup-seconds 2] [--messages-per-post 1] [--accounts 8] [--text-share 0.7] [--duplicates 0.05]
//          [--statuses 0.2] [--subscribers 0] [--backfill 0] [--connections 256] [--client sockets|httpclient] [--p99 50] [--native PATH] [--no-redis]
//          [--report-dir DIR] [--strict] [--set KEY=VALUE …]                   open-model load run (docs/PERFORMANCE.md)
//          [--closed-loop N1,N2]                                               closed-loop steps of N connections instead of rates
//   ceilings copy|http|broadcast|receiver|open [--rounds 3] [--seconds 10] [--native PATH] [--client httpclient|wrk (receiver)]
//            [--rates R1,R2,… (open)]
//                                                                              each figure beside the machine's ceiling
//   storm  [--seconds 10] [--rounds 3] [--duplicates 0.9] [--concurrency 32]   Redis screening under a retry storm
//   closed-loop --url URL --connections N --messages-per-post N --seconds N   closed loop against a running receiver
//   profile write-path                                                         PostgreSQL CPU per statement of the write path
//   replies [--rate 200] [--seconds 10] [--accounts 10] [--rounds 3] [--graph-latency-ms 0] [--per-account 80]
//                                                                              replies through the outbox vs direct calls
//   faults [--long] [--native PATH] [--report FILE]                            the fault suite (docs/RELIABILITY.md)
//   overload [--long] [--max-rate R] [--factors 2,5] [--native PATH] [--report FILE] [--set KEY=VALUE …]
//                                                                              load beyond capacity (docs/PERFORMANCE.md)
const string Usage = "usage: Memo.Ingest.Load run [--rates R1,R2,... | --closed-loop N1,N2,...] [--step-seconds N] [--warmup-seconds N] [--messages-per-post N] [--accounts N] [--duplicates RATIO]\n" +
                     "           [--statuses RATIO] [--subscribers N] [--backfill MESSAGES] [--connections N] [--client sockets|httpclient] [--p99 MS] [--native PATH] [--no-redis] [--report-dir DIR] [--set KEY=VALUE ...] [--strict]\n" +
                     "       Memo.Ingest.Load ceilings copy|http|broadcast|receiver|open [--rounds N] [--seconds N] [--native PATH] [--client httpclient|wrk] [--rates R1,R2,...]\n" +
                     "       Memo.Ingest.Load storm [--seconds N] [--rounds N] [--duplicates RATIO] [--concurrency N]\n" +
                     "       Memo.Ingest.Load profile write-path\n" +
                     "       Memo.Ingest.Load replies [--rate R] [--seconds N] [--accounts N] [--rounds N] [--graph-latency-ms MS] [--per-account R]\n" +
                     "       Memo.Ingest.Load faults [--long] [--native PATH] [--report FILE]\n" +
                     "       Memo.Ingest.Load overload [--long] [--max-rate R] [--factors F1,F2] [--native PATH] [--report FILE] [--set KEY=VALUE ...]";
try
{
    return args switch
    {
        ["run", .. var options] => await RunLoadAsync(options),
        ["storm", .. var options] => await RunStormAsync(options),
        ["replies", .. var options] => await RunRepliesAsync(options),
        ["ceilings", var which, .. var options] => await RunCeilingsAsync(which, options),
        ["faults", .. var options] => await RunFaultsAsync(options),
        ["profile", "write-path"] => await WritePathProfile.RunAsync(Console.Out),
        ["overload", .. var options] => await RunOverloadAsync(options),
        ["closed-loop", "--url", var url, "--connections", var connections, "--messages-per-post", var perPost, "--seconds", var seconds] =>
            await ClosedLoopCommand.RunAsync(new Uri(url), ParseInt(connections), ParseInt(perPost), ParseInt(seconds), Console.Out),
        ["bare-hmac-receiver", "--port", var barePort] => await BareHmacServer.RunAsync(ParseInt(barePort)),
        ["conventional-receiver", "--port", var port, "--postgres", var postgres] =>
            await ConventionalReceiver.RunAsync(ParseInt(port), postgres, Memo.Ingest.TestSupport.GatewayHost.Secret),
        _ => Fail(),
    };
}
catch (UsageException e)
{
    Console.Error.WriteLine(e.Message);
    return Fail();
}

static double[] ParseList(string values) => [.. values.Split(',').Select(ParseNumber)];

static int ParseInt(string value) =>
    int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int parsed) ? parsed : throw new UsageException($"'{value}' is not a whole number.");

static double ParseNumber(string value) =>
    double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double parsed) ? parsed : throw new UsageException($"'{value}' is not a number.");

static int Fail()
{
    Console.Error.WriteLine(Usage);
    return 2;
}

static Task<int> RunLoadAsync(string[] options)
{
    var settings = new RunSettings();
    bool strict = false;
    for (int i = 0; i < options.Length; i++)
    {
        if (options[i] == "--strict")
        {
            strict = true;
            continue;
        }

        string Next() => i + 1 < options.Length ? options[++i] : throw new UsageException($"{options[i]} needs a value.");
        int NextInt() => ParseInt(Next());
        double NextDouble() => ParseNumber(Next());
        settings = options[i] switch
        {
            "--rates" => settings with { Rates = ParseList(Next()) },
            "--closed-loop" => settings with { ClosedLoop = [.. ParseList(Next()).Select(static c => (int)c)] },
            "--step-seconds" => settings with { StepSeconds = NextInt() },
            "--warmup-seconds" => settings with { WarmUpSeconds = NextInt() },
            "--messages-per-post" => settings with { MessagesPerPost = NextInt() },
            "--accounts" => settings with { Accounts = NextInt() },
            "--text-share" => settings with { TextShare = NextDouble() },
            "--duplicates" => settings with { DuplicateRatio = NextDouble() },
            "--statuses" => settings with { StatusRatio = NextDouble() },
            "--subscribers" => settings with { Subscribers = NextInt() },
            "--backfill" => settings with { BackfillMessages = NextInt() },
            "--connections" => settings with { Connections = NextInt() },
            "--client" => settings with { Client = Next() switch { "sockets" => OpenModelClient.Sockets, "httpclient" => OpenModelClient.HttpClient, var other => throw new UsageException($"Unknown client {other}.") } },
            "--p99" => settings with { P99BoundMilliseconds = NextDouble() },
            "--native" => settings with { NativeBinary = Path.GetFullPath(Next()) },
            "--no-redis" => settings with { WithRedis = false },
            "--report-dir" => settings with { ReportDirectory = Next() },
            "--set" when Next().Split('=', 2) is [var key, var value] => settings with { GatewaySettings = new(settings.GatewaySettings) { [key] = value } },
            _ => throw new UsageException($"Unknown option {options[i]}."),
        };
    }

    return new RunScenario(settings, strict).RunAsync(Console.Out);
}

static Task<int> RunCeilingsAsync(string which, string[] options)
{
    (int rounds, int seconds, string? native, string client, double[]? rates) = (3, 10, null, "httpclient", null);
    for (int i = 0; i + 1 < options.Length; i += 2)
    {
        switch (options[i])
        {
            case "--rounds": rounds = ParseInt(options[i + 1]); break;
            case "--seconds": seconds = ParseInt(options[i + 1]); break;
            case "--native": native = Path.GetFullPath(options[i + 1]); break;
            case "--client": client = options[i + 1]; break;
            case "--rates": rates = ParseList(options[i + 1]); break;
            default: throw new UsageException($"Unknown option {options[i]}.");
        }
    }

    return new CeilingsCommand(which, rounds, seconds, native, Console.Out, client, rates).RunAsync();
}

static async Task<int> RunStormAsync(string[] options)
{
    var settings = new StormSettings();
    for (int i = 0; i + 1 < options.Length; i += 2)
    {
        settings = options[i] switch
        {
            "--seconds" => settings with { Seconds = ParseInt(options[i + 1]) },
            "--rounds" => settings with { Rounds = ParseInt(options[i + 1]) },
            "--duplicates" => settings with { DuplicateRatio = ParseNumber(options[i + 1]) },
            "--concurrency" => settings with { Concurrency = ParseInt(options[i + 1]) },
            _ => throw new UsageException($"Unknown option {options[i]}."),
        };
    }

    Console.WriteLine(StormResult.Header);
    return await new StormScenario(settings).RunAsync();
}

static Task<int> RunRepliesAsync(string[] options)
{
    var settings = new ReplySettings();
    for (int i = 0; i + 1 < options.Length; i += 2)
    {
        string value = options[i + 1];
        settings = options[i] switch
        {
            "--rate" => settings with { Rate = ParseNumber(value) },
            "--seconds" => settings with { Seconds = ParseInt(value) },
            "--accounts" => settings with { Accounts = ParseInt(value) },
            "--rounds" => settings with { Rounds = ParseInt(value) },
            "--graph-latency-ms" => settings with { GraphLatencyMilliseconds = ParseInt(value) },
            "--per-account" => settings with { MessagesPerSecondPerAccount = ParseNumber(value) },
            _ => throw new UsageException($"Unknown option {options[i]}."),
        };
    }

    return new ReplyScenario(settings).RunAsync();
}

static Task<int> RunFaultsAsync(string[] options)
{
    (bool isLong, string? native, string? reportFile) = ParseSuiteOptions(options);
    FaultSettings settings = (isLong ? FaultSettings.Long : new FaultSettings()) with { NativeBinary = native };
    return ReportAsync(reportFile, report => new FaultSuite(settings).RunAsync(report));
}

static Task<int> RunOverloadAsync(string[] options)
{
    // --set KEY=VALUE (repeatable) passes a gateway setting, e.g. --set Memo__Ingest__EnqueueTimeoutMilliseconds=2000;
    // --max-rate R skips the search for the maximum sustainable rate; --factors 2,5 are the overloads (× R).
    var gatewaySettings = new Dictionary<string, string?>();
    var rest = new List<string>();
    double? maxRate = null;
    double[]? factors = null;
    for (int i = 0; i < options.Length; i++)
    {
        if (options[i] == "--set" && i + 1 < options.Length && options[i + 1].Split('=', 2) is [var key, var value])
        {
            gatewaySettings[key] = value;
            i++;
        }
        else if (options[i] == "--max-rate" && i + 1 < options.Length)
        {
            maxRate = ParseNumber(options[++i]);
        }
        else if (options[i] == "--factors" && i + 1 < options.Length)
        {
            factors = ParseList(options[++i]);
        }
        else
        {
            rest.Add(options[i]);
        }
    }

    (bool isLong, string? native, string? reportFile) = ParseSuiteOptions([.. rest]);
    OverloadSettings settings = (isLong ? OverloadSettings.Long : new OverloadSettings()) with
    {
        NativeBinary = native, GatewaySettings = gatewaySettings, MaxRate = maxRate,
    };
    if (factors is not null)
    {
        settings = settings with { Factors = factors };
    }

    return ReportAsync(reportFile, report => new OverloadScenario(settings).RunAsync(report));
}

static (bool Long, string? Native, string? ReportFile) ParseSuiteOptions(string[] options)
{
    (bool isLong, string? native, string? reportFile) = (false, null, null);
    for (int i = 0; i < options.Length; i++)
    {
        switch (options[i])
        {
            case "--long": isLong = true; break;
            case "--native" when i + 1 < options.Length: native = Path.GetFullPath(options[++i]); break;
            case "--report" when i + 1 < options.Length: reportFile = options[++i]; break;
            default: throw new UsageException($"Unknown option {options[i]}.");
        }
    }

    return (isLong, native, reportFile);
}

/// <summary>Runs a scenario writing its report to the console, and to a file when asked.</summary>
static async Task<int> ReportAsync(string? reportFile, Func<TextWriter, Task<int>> scenario)
{
    var copy = new StringWriter();
    int exitCode = await scenario(new TeeWriter(Console.Out, copy));
    if (reportFile is not null)
    {
        await File.WriteAllTextAsync(reportFile, copy.ToString());
    }

    return exitCode;
}
