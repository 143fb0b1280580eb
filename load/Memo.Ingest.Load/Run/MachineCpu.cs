using System.Globalization;

namespace Memo.Ingest.Load.Run;

/// <summary>
/// The whole machine's CPU time from the first line of /proc/stat, in seconds summed over its cores: what every process
/// used (user, nice, system, interrupts), and what the hypervisor gave to others while this VM wanted to run (steal).
/// A step whose figures drop while steal rises measured the host, not the gateway. Linux only; zeros elsewhere.
/// </summary>
internal readonly record struct MachineCpu(double BusySeconds, double StolenSeconds)
{
    public static MachineCpu Now()
    {
        try
        {
            string? line = File.ReadLines("/proc/stat").FirstOrDefault();
            if (line is null || !line.StartsWith("cpu ", StringComparison.Ordinal))
            {
                return default;
            }

            // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user)
            long[] ticks = [.. line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(static t => long.Parse(t, CultureInfo.InvariantCulture))];
            long busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6];
            long steal = ticks.Length > 7 ? ticks[7] : 0;
            return new MachineCpu(busy / ProcessCpu.TicksPerSecond, steal / ProcessCpu.TicksPerSecond);
        }
        catch (IOException)
        {
            return default;
        }
        catch (UnauthorizedAccessException)
        {
            return default;
        }
    }
}
