using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Memo.Ingest.TestSupport;

/// <summary>
/// A real PostgreSQL for tests: MEMO_TEST_POSTGRES (a connection string) when set, otherwise a private cluster started
/// with scripts/postgres-local.sh on a free loopback port. Each caller gets its own database, so test classes never
/// see each other's rows.
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    private readonly string? _dataDirectory;
    private readonly int _port;

    private PostgresServer(string adminConnectionString, string? dataDirectory, int port = 0)
    {
        AdminConnectionString = adminConnectionString;
        _dataDirectory = dataDirectory;
        _port = port;
    }

    public string AdminConnectionString { get; }

    /// <summary>The server's process id (from postmaster.pid), for CPU accounting; null for an external server.</summary>
    public int? ProcessId => _dataDirectory is not null && File.Exists(Path.Combine(_dataDirectory, "pgdata", "postmaster.pid"))
        ? int.Parse(File.ReadLines(Path.Combine(_dataDirectory, "pgdata", "postmaster.pid")).First(), System.Globalization.CultureInfo.InvariantCulture)
        : null;

    public static async Task<PostgresServer> StartAsync()
    {
        string? configured = Environment.GetEnvironmentVariable("MEMO_TEST_POSTGRES");
        if (!string.IsNullOrEmpty(configured))
        {
            return new PostgresServer(configured, null);
        }

        string dataDirectory = Path.Combine(Path.GetTempPath(), "memo-test-pg-" + Guid.NewGuid().ToString("N")[..8]);
        int port = FreePort();
        string output = await RepositoryScript.RunAsync("scripts/postgres-local.sh", "start", dataDirectory, port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return new PostgresServer(output.Trim().Split('\n')[^1], dataDirectory, port);
    }

    /// <summary>Stops the server (fast shutdown: sessions are cut, as in a failover), keeping its data.</summary>
    public Task StopAsync() =>
        RepositoryScript.RunAsync("scripts/postgres-local.sh", "stop", _dataDirectory ?? throw new InvalidOperationException("An external server cannot be stopped."));

    /// <summary>Stops the server the way a crash would (<c>pg_ctl stop -m immediate</c>: every process quits at once, no
    /// checkpoint); the next start replays the WAL.</summary>
    public Task CrashAsync() =>
        RepositoryScript.RunAsync("scripts/postgres-local.sh", "crash", _dataDirectory ?? throw new InvalidOperationException("An external server cannot be crashed."));

    /// <summary>Starts the stopped server again on the same port with the same data.</summary>
    public Task StartAgainAsync() =>
        RepositoryScript.RunAsync("scripts/postgres-local.sh", "start", _dataDirectory ?? throw new InvalidOperationException("An external server cannot be started."),
            _port.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>
    /// Makes a fresh cluster's WAL look like that of a server in service: keeps <paramref name="segments"/> recycled
    /// 16 MB segments ready (min_wal_size), so that a burst of writes does not create and zero-fill each new segment while
    /// every committer waits (WALInitWrite / WALInitSync in pg_stat_activity). A fresh cluster has none; a server that
    /// has run with this min_wal_size keeps them at every checkpoint. Load runs measure the gateway, not a new cluster.
    /// Only for a private cluster: an external server (MEMO_TEST_POSTGRES) is left as it is.
    /// </summary>
    public async Task WarmWalAsync(int segments = 128)
    {
        if (_dataDirectory is null)
        {
            return;
        }

        // Then the warm-up itself: each switch after a record moves the server to a new segment, which it creates; the
        // checkpoint then keeps the used ones as recycled future segments (up to min_wal_size) instead of removing them.
        await ExecuteEachAsync(
            string.Create(System.Globalization.CultureInfo.InvariantCulture, $"ALTER SYSTEM SET min_wal_size = '{segments * 16}MB'"),
            string.Create(System.Globalization.CultureInfo.InvariantCulture, $"ALTER SYSTEM SET max_wal_size = '{segments * 32}MB'"),
            "SELECT pg_reload_conf()",
            $"CREATE TABLE wal_warmup (x int); DO $$ BEGIN FOR i IN 1..{segments} LOOP INSERT INTO wal_warmup VALUES (i); PERFORM pg_switch_wal(); END LOOP; END $$; DROP TABLE wal_warmup; CHECKPOINT");
    }

    /// <summary>
    /// Makes the server time its WAL writes and flushes (<c>track_wal_io_timing</c>), so that <c>pg_stat_wal</c> says
    /// how long its flushes take. Only for a private cluster: an external server (MEMO_TEST_POSTGRES) is left as it is.
    /// </summary>
    public async Task TimeWalFlushesAsync()
    {
        if (_dataDirectory is null)
        {
            return;
        }

        await ExecuteEachAsync("ALTER SYSTEM SET track_wal_io_timing = on", "SELECT pg_reload_conf()");
    }

    /// <summary>Runs each statement as a command of its own on an admin connection (ALTER SYSTEM refuses to run in a
    /// transaction block, which several statements in one command would be).</summary>
    private async Task ExecuteEachAsync(params string[] statements)
    {
        await using var connection = new NpgsqlConnection(AdminConnectionString);
        await connection.OpenAsync();
        foreach (string sql in statements)
        {
            await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 300 };
            await command.ExecuteNonQueryAsync();
        }
    }

    /// <summary>Creates a fresh, empty database and returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync(string prefix)
    {
        string name = (prefix + "_" + Guid.NewGuid().ToString("N")[..10]).ToLowerInvariant();
        await using var connection = new NpgsqlConnection(AdminConnectionString);
        await connection.OpenAsync();
        await using (var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection))
        {
            await command.ExecuteNonQueryAsync();
        }

        return new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = name, MaxPoolSize = 50 }.ConnectionString;
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        if (_dataDirectory is not null)
        {
            await RepositoryScript.RunAsync("scripts/postgres-local.sh", "stop", _dataDirectory);
            try
            {
                Directory.Delete(_dataDirectory, recursive: true);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
