using System.Globalization;
using Memo.Ingest.Load;
using Memo.Ingest.Load.Faults;

// dotnet run -c Release --project load/Memo.Ingest.Load -- <scenario> [options]
//   storm  [--seconds 10] [--rounds 3] [--duplicates 0.9] [--concurrency 32]   Redis screening under a retry storm
//   faults [--long] [--native PATH] [--report FILE]                            the fault suite (docs/RELIABILITY.md)
const string Usage = "usage: Memo.Ingest.Load storm [--seconds N] [--rounds N] [--duplicates RATIO] [--concurrency N]\n" +
                     "       Memo.Ingest.Load faults [--long] [--native PATH] [--report FILE]";
return args switch
{
    ["storm", .. var options] => await RunStormAsync(options),
    ["faults", .. var options] => await RunFaultsAsync(options),
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

static async Task<int> RunFaultsAsync(string[] options)
{
    var settings = new FaultSettings();
    string? reportFile = null;
    for (int i = 0; i < options.Length; i++)
    {
        switch (options[i])
        {
            case "--long": settings = FaultSettings.Long with { NativeBinary = settings.NativeBinary }; break;
            case "--native" when i + 1 < options.Length: settings = settings with { NativeBinary = Path.GetFullPath(options[++i]) }; break;
            case "--report" when i + 1 < options.Length: reportFile = options[++i]; break;
            default: throw new ArgumentException($"Unknown option {options[i]}.");
        }
    }

    var report = new StringWriter();
    var both = new TeeWriter(Console.Out, report);
    int exitCode = await new FaultSuite(settings).RunAsync(both);
    if (reportFile is not null)
    {
        await File.WriteAllTextAsync(reportFile, report.ToString());
    }

    return exitCode;
}
