using System.Globalization;
using Memo.Ingest.Load;
using Memo.Ingest.Load.Faults;
using Memo.Ingest.Load.Overload;

// dotnet run -c Release --project load/Memo.Ingest.Load -- <scenario> [options]
//   storm  [--seconds 10] [--rounds 3] [--duplicates 0.9] [--concurrency 32]   Redis screening under a retry storm
//   faults [--long] [--native PATH] [--report FILE]                            the fault suite (docs/RELIABILITY.md)
//   overload [--long] [--native PATH] [--report FILE] [--set KEY=VALUE …]      load beyond capacity (docs/RELIABILITY.md)
const string Usage = "usage: Memo.Ingest.Load storm [--seconds N] [--rounds N] [--duplicates RATIO] [--concurrency N]\n" +
                     "       Memo.Ingest.Load faults [--long] [--native PATH] [--report FILE]\n" +
                     "       Memo.Ingest.Load overload [--long] [--native PATH] [--report FILE] [--set KEY=VALUE ...]";
return args switch
{
    ["storm", .. var options] => await RunStormAsync(options),
    ["faults", .. var options] => await RunFaultsAsync(options),
    ["overload", .. var options] => await RunOverloadAsync(options),
    _ => Fail(),
};

static int Fail()
{
    Console.Error.WriteLine(Usage);
    return 2;
}

static async Task<int> RunStormAsync(string[] options)
{
    var settings = new StormSettings();
    for (int i = 0; i + 1 < options.Length; i += 2)
    {
        settings = options[i] switch
        {
            "--seconds" => settings with { Seconds = int.Parse(options[i + 1], CultureInfo.InvariantCulture) },
            "--rounds" => settings with { Rounds = int.Parse(options[i + 1], CultureInfo.InvariantCulture) },
            "--duplicates" => settings with { DuplicateRatio = double.Parse(options[i + 1], CultureInfo.InvariantCulture) },
            "--concurrency" => settings with { Concurrency = int.Parse(options[i + 1], CultureInfo.InvariantCulture) },
            _ => throw new ArgumentException($"Unknown option {options[i]}."),
        };
    }

    Console.WriteLine(StormResult.Header);
    return await new StormScenario(settings).RunAsync();
}

static Task<int> RunFaultsAsync(string[] options)
{
    (bool isLong, string? native, string? reportFile) = ParseSuiteOptions(options);
    FaultSettings settings = (isLong ? FaultSettings.Long : new FaultSettings()) with { NativeBinary = native };
    return ReportAsync(reportFile, report => new FaultSuite(settings).RunAsync(report));
}

static Task<int> RunOverloadAsync(string[] options)
{
    // --set KEY=VALUE (repeatable) passes a gateway setting, e.g. --set Memo__Ingest__EnqueueTimeoutMilliseconds=2000.
    var gatewaySettings = new Dictionary<string, string?>();
    var rest = new List<string>();
    for (int i = 0; i < options.Length; i++)
    {
        if (options[i] == "--set" && i + 1 < options.Length && options[i + 1].Split('=', 2) is [var key, var value])
        {
            gatewaySettings[key] = value;
            i++;
        }
        else
        {
            rest.Add(options[i]);
        }
    }

    (bool isLong, string? native, string? reportFile) = ParseSuiteOptions([.. rest]);
    OverloadSettings settings = (isLong ? OverloadSettings.Long : new OverloadSettings()) with { NativeBinary = native, GatewaySettings = gatewaySettings };
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
            default: throw new ArgumentException($"Unknown option {options[i]}.");
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
