using System.Globalization;
using Memo.Ingest.Sequencing;
using Npgsql;

namespace Memo.Ingest.Load.Run;

/// <summary>
/// The sequencer's PostgreSQL backends so far: nanoseconds each ran on a core and nanoseconds it was runnable but
/// waited for one (<c>/proc/&lt;pid&gt;/schedstat</c>). On a box with no idle core that wait stretches the sequencer's
/// rounds, and every event waits for its round: at 10,000 POSTs/s here the backend waited about 225 ms a second for a
/// core beside 475-517 ms on one, and more while autovacuum ran (docs/PERFORMANCE.md, thirty-first session). The
/// backends are the sessions whose latest statement was a sequencer round (each starts with
/// <see cref="SequencerSql.StatementMarker"/>), and those of the reading before: rounds run hundreds of times a second and
/// idle sessions poll, but a session can be caught between rounds (rebalancing), and one of ten runs of the thirty-second
/// session lost its busy session that way and reported 2 % of a core. Linux and a local server only; empty otherwise.
/// </summary>
internal sealed record SequencerBackends(IReadOnlyDictionary<int, (long RunNanoseconds, long WaitNanoseconds)> ByProcess)
{
    public static async Task<SequencerBackends> ReadAsync(string adminConnectionString, SequencerBackends? before)
    {
        var byProcess = new Dictionary<int, (long, long)>();
        if (!Directory.Exists("/proc"))
        {
            return new SequencerBackends(byProcess);
        }

        var pids = new HashSet<int>(before?.ByProcess.Keys ?? []);
        await using (var connection = new NpgsqlConnection(adminConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT pid FROM pg_stat_activity WHERE starts_with(ltrim(query), $1)", connection);
            command.Parameters.AddWithValue(SequencerSql.StatementMarker);
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                pids.Add(reader.GetInt32(0));
            }
        }

        foreach (int pid in pids)
        {
            try
            {
                string[] fields = (await File.ReadAllTextAsync($"/proc/{pid}/schedstat")).Split(' ');
                byProcess[pid] = (long.Parse(fields[0], CultureInfo.InvariantCulture), long.Parse(fields[1], CultureInfo.InvariantCulture));
            }
            catch (IOException)
            {
                // The session has ended.
            }
        }

        return new SequencerBackends(byProcess);
    }

    /// <summary>Time on a core and time runnable but waiting for one, each in percent of one core.</summary>
    public readonly record struct Share(double RunPercent, double WaitPercent);

    /// <summary>What the backends present at both readings ran, and waited, in between.</summary>
    public static Share Between(SequencerBackends earlier, SequencerBackends later, double seconds)
    {
        long run = 0, wait = 0;
        foreach ((int pid, (long laterRun, long laterWait)) in later.ByProcess)
        {
            if (earlier.ByProcess.TryGetValue(pid, out (long Run, long Wait) before))
            {
                run += laterRun - before.Run;
                wait += laterWait - before.Wait;
            }
        }

        return seconds > 0 ? new Share(run / 1e7 / seconds, wait / 1e7 / seconds) : default;
    }
}
