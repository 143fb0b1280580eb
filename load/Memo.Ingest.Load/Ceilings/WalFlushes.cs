using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace Memo.Ingest.Load.Ceilings;

/// <summary>
/// The WAL flushes PostgreSQL made while a receiver was driven (<c>pg_stat_wal</c>, for the whole server): how many a
/// second, and how long each took (with <c>track_wal_io_timing</c>, <see cref="TestSupport.PostgresServer.TimeWalFlushesAsync"/>).
/// Every commit waits for the flush in progress and then for its own, so at one message per POST these flushes, not
/// the CPU, set a closed loop's latency for both receivers on a disk like this machine's (docs/PERFORMANCE.md,
/// twentieth session).
/// </summary>
internal readonly record struct WalFlushes(long Count, double Milliseconds, double Seconds)
{
    public double PerSecond => Seconds > 0 ? Count / Seconds : 0;

    /// <summary>0 when the server does not time its WAL I/O.</summary>
    public double MillisecondsEach => Count > 0 ? Milliseconds / Count : 0;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{PerSecond:F0} WAL flushes/s of {MillisecondsEach:F2} ms");

    /// <summary>Runs <paramref name="span"/> and returns its result with the flushes the server made meanwhile.</summary>
    public static async Task<(T Result, WalFlushes Flushes)> MeasureAsync<T>(string connectionString, Func<Task<T>> span)
    {
        (long Count, double Milliseconds) before = await ReadAsync(connectionString);
        long started = Stopwatch.GetTimestamp();
        T result = await span();
        double seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        (long Count, double Milliseconds) after = await ReadAsync(connectionString);
        return (result, new WalFlushes(after.Count - before.Count, after.Milliseconds - before.Milliseconds, seconds));
    }

    private static async Task<(long Count, double Milliseconds)> ReadAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT wal_sync, wal_sync_time FROM pg_stat_wal", connection);
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetDouble(1));
    }
}
