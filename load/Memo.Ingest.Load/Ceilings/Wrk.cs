using System.Diagnostics;

namespace Memo.Ingest.Load.Ceilings;

/// <summary>Runs wrk (a Debian package, installed by <c>scripts/install-deps.sh --tests</c>) and returns what it printed.</summary>
internal static class Wrk
{
    public static async Task<string> RunAsync(IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo("wrk") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        Process? started;
        try
        {
            started = Process.Start(start);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("wrk did not start (apt-get install wrk): " + e.Message, e);
        }

        using Process wrk = started ?? throw new InvalidOperationException("wrk did not start (apt-get install wrk).");
        // Both streams at once, so that neither can fill its pipe while the other is read.
        Task<string> errors = wrk.StandardError.ReadToEndAsync();
        string output = await wrk.StandardOutput.ReadToEndAsync();
        await wrk.WaitForExitAsync();
        return output + await errors;
    }
}
