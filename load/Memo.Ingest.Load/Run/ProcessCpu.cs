using System.Globalization;

namespace Memo.Ingest.Load.Run;

/// <summary>
/// CPU time (user + system) of a process and its children from /proc, to say where the cores went during a step:
/// the gateway, or PostgreSQL (the postmaster and its backends). Linux only; 0 elsewhere.
/// </summary>
internal static class ProcessCpu
{
    /// <summary>USER_HZ on Linux: the unit of the CPU times in /proc.</summary>
    public const double TicksPerSecond = 100;

    public static double Seconds(int? root)
    {
        if (root is not int pid || !Directory.Exists("/proc"))
        {
            return 0;
        }

        double total = 0;
        foreach (string directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), out int candidate))
            {
                continue;
            }

            try
            {
                string stat = File.ReadAllText(Path.Combine(directory, "stat"));
                // Fields after the command name, which is in parentheses and may hold spaces.
                string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                int parent = int.Parse(fields[1], CultureInfo.InvariantCulture);
                if (candidate == pid || parent == pid)
                {
                    total += (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / TicksPerSecond;
                }
            }
            catch (IOException)
            {
                // The process ended while we looked.
            }
        }

        return total;
    }
}
