using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace Memo.Ingest.Load;

/// <summary>
/// PostgreSQL's WAL flushes (<c>pg_stat_wal</c>, for the whole server) over a span of <see cref="Seconds"/>: how many,
/// and how long they took (with <c>track_wal_io_timing</c>, <see cref="TestSupport.PostgresServer.TimeWalFlushesAsync"/>;
/// 0 without it). Every commit waits for the flush in progress and then for its own, so at one message per POST these
/// flushes, not the CPU, set a closed loop's latency on a disk like this machine's (docs/PERFORMANCE.md, twentieth
/// session). <see cref="ReadAsync"/> gives the server's totals so far, a span from zero.
/// </summary>
internal readonly record struct WalFlushes(long Count, double Milliseconds, double Seconds)
{
    public double PerSecond => Seconds > 0 ? Count / Seconds : 0;

    /// <summary>0 when the server does not time its WAL I/O.</summary>
    public double MillisecondsEach => Count > 0 ? Milliseconds / Count : 0;

    /// <summary>The flushes between two readings of the totals, <paramref name="seconds"/> apart.</summary>
    public static WalFlushes Between(WalFlushes earlier, WalFlushes later, double seconds) =>
        new(later.Count - earlier.Count, later.Milliseconds - earlier.Milliseconds, seconds);

    /// <summary>The server's totals so far.</summary>
    public static async Task<WalFlushes> ReadAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT wal_sync, wal_sync_time FROM pg_stat_wal", connection);
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return new WalFlushes(reader.GetInt64(0), reader.GetDouble(1), 0);
    }

    /// <summary>Runs <paramref name="span"/> and returns its result with the flushes the server made meanwhile.</summary>
    public static async Task<(T Result, WalFlushes Flushes)> MeasureAsync<T>(string connectionString, Func<Task<T>> span)
    {
        WalFlushes before = await ReadAsync(connectionString);
        long started = Stopwatch.GetTimestamp();
        T result = await span();
        double seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        return (result, Between(before, await ReadAsync(connectionString), seconds));
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{PerSecond:F0} WAL flushes/s of {MillisecondsEach:F2} ms");
}
