using System.Globalization;
using System.Text;
using Npgsql;

namespace Memo.Ingest.Storage;

/// <summary>
/// Which database, and which history of it, a connection writes to: the cluster's system identifier, the timeline of
/// its last checkpoint and the database's OID, as <c>db{system}.{timeline}.{oid}:</c>. Redis' "already committed" keys
/// are scoped by it (<see cref="Redis.DuplicateScreen"/>), so that a gateway pointed at a different database, a
/// database restored from a backup (a new cluster, or a dropped and recreated database: another system identifier or
/// OID) or a promoted replica (a new timeline) never trusts what Redis learnt from the database before; a retry of a
/// message that the new database does not have is written again instead of being answered 200 and lost. Read when
/// a writer opens its connection, so that a reconnect to another server reads it again. All three are readable by
/// any role.
/// </summary>
internal static class DatabaseIdentity
{
    private const string Query = """
        SELECT s.system_identifier, c.timeline_id, d.oid::bigint
        FROM pg_control_system() s, pg_control_checkpoint() c, pg_database d
        WHERE d.datname = current_database()
        """;

    public static async Task<byte[]> ReadAsync(NpgsqlConnection connection)
    {
        await using var command = new NpgsqlCommand(Query, connection);
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
        if (!await reader.ReadAsync())
        {
            throw new InvalidOperationException("The current database is not in pg_database.");
        }

        return Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture,
            $"db{reader.GetInt64(0)}.{reader.GetInt32(1)}.{reader.GetInt64(2)}:"));
    }
}
