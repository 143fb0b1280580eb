using Npgsql;

namespace Memo.Ingest.Storage;

/// <summary>
/// Applies the embedded <c>Migrations/NNNN_name.sql</c> scripts in order, each once. Several gateway processes may
/// start together: a transaction-scoped advisory lock serialises them, and DDL in PostgreSQL is transactional, so a
/// process either sees a migration fully applied or applies it itself.
/// </summary>
internal static class MigrationRunner
{
    // An arbitrary, fixed key for pg_advisory_xact_lock ("memo" in ASCII).
    private const long AdvisoryLockKey = 0x6D656D6F;

    // Read from the assembly once; the scripts never change while the process runs.
    private static readonly List<(int Version, string Name, string Sql)> s_scripts = LoadScripts();

    public static async Task<int> ApplyAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);

        await using (var command = new NpgsqlCommand(
            "SELECT pg_advisory_xact_lock(@key); " +
            "CREATE TABLE IF NOT EXISTS memo_schema_migrations (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
            connection, transaction))
        {
            command.Parameters.AddWithValue("key", AdvisoryLockKey);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        var applied = new HashSet<int>();
        await using (var command = new NpgsqlCommand("SELECT version FROM memo_schema_migrations", connection, transaction))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                applied.Add(reader.GetInt32(0));
            }
        }

        int count = 0;
        foreach (var (version, name, sql) in s_scripts)
        {
            if (applied.Contains(version))
            {
                continue;
            }

            await using (var command = new NpgsqlCommand(sql, connection, transaction))
            {
                await command.ExecuteNonQueryAsync(cancellationToken);
            }

            await using (var command = new NpgsqlCommand("INSERT INTO memo_schema_migrations (version, name) VALUES (@v, @n)", connection, transaction))
            {
                command.Parameters.AddWithValue("v", version);
                command.Parameters.AddWithValue("n", name);
                await command.ExecuteNonQueryAsync(cancellationToken);
            }

            count++;
        }

        await transaction.CommitAsync(cancellationToken);
        return count;
    }

    /// <summary>The highest migration version shipped in this binary.</summary>
    public static int LatestVersion => s_scripts[^1].Version;

    private static List<(int Version, string Name, string Sql)> LoadScripts()
    {
        var assembly = typeof(MigrationRunner).Assembly;
        var scripts = new List<(int, string, string)>();
        foreach (string resource in assembly.GetManifestResourceNames())
        {
            if (!resource.StartsWith("Migrations/", StringComparison.Ordinal) || !resource.EndsWith(".sql", StringComparison.Ordinal))
            {
                continue;
            }

            string name = resource["Migrations/".Length..^".sql".Length];
            int version = int.Parse(name.AsSpan(0, name.IndexOf('_')), System.Globalization.CultureInfo.InvariantCulture);
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var reader = new StreamReader(stream);
            scripts.Add((version, name, reader.ReadToEnd()));
        }

        scripts.Sort(static (a, b) => a.Item1.CompareTo(b.Item1));
        return scripts;
    }
}
