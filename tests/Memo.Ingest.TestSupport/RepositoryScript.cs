using System.Diagnostics;

namespace Memo.Ingest.TestSupport;

/// <summary>Finds the repository root (the folder holding Memo.Ingest.sln) and runs its scripts.</summary>
public static class RepositoryScript
{
    public static string Root { get; } = FindRoot();

    public static async Task<string> RunAsync(string script, params string[] arguments)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Root };
        start.ArgumentList.Add(Path.Combine(Root, script));
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{script} {string.Join(' ', arguments)} failed ({process.ExitCode}): {await stderr}");
        }

        return await stdout;
    }

    private static string FindRoot()
    {
        for (string? dir = AppContext.BaseDirectory; dir is not null; dir = Path.GetDirectoryName(dir))
        {
            if (File.Exists(Path.Combine(dir, "Memo.Ingest.sln")))
            {
                return dir;
            }
        }

        throw new InvalidOperationException("Memo.Ingest.sln not found above " + AppContext.BaseDirectory);
    }
}
