using System.Globalization;
using Memo.Ingest.Load;

// dotnet run -c Release --project load/Memo.Ingest.Load -- storm [--seconds 10] [--rounds 3] [--duplicates 0.9] [--concurrency 32]
if (args.Length == 0 || args[0] != "storm")
{
    Console.Error.WriteLine("usage: Memo.Ingest.Load storm [--seconds N] [--rounds N] [--duplicates RATIO] [--concurrency N]");
    return 2;
}

var settings = new StormSettings();
for (int i = 1; i + 1 < args.Length; i += 2)
{
    settings = args[i] switch
    {
        "--seconds" => settings with { Seconds = int.Parse(args[i + 1], CultureInfo.InvariantCulture) },
        "--rounds" => settings with { Rounds = int.Parse(args[i + 1], CultureInfo.InvariantCulture) },
        "--duplicates" => settings with { DuplicateRatio = double.Parse(args[i + 1], CultureInfo.InvariantCulture) },
        "--concurrency" => settings with { Concurrency = int.Parse(args[i + 1], CultureInfo.InvariantCulture) },
        _ => throw new ArgumentException($"Unknown option {args[i]}."),
    };
}

Console.WriteLine(StormResult.Header);
return await new StormScenario(settings).RunAsync();
