using Npgsql;

namespace Memo.Ingest.IntegrationTests;

/// <summary>Direct reads of the tables, for assertions the public API does not expose.</summary>
internal static class Database
{
    public static async Task<long> CountAsync(string connectionString, string sql, params object[] parameters)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (object parameter in parameters)
        {
            command.Parameters.Add(parameter is string[]
                ? new NpgsqlParameter { Value = parameter, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Text }
                : new NpgsqlParameter { Value = parameter });
        }

        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>One account's event log seqs, in order.</summary>
    public static async Task<long[]> SeqsAsync(string connectionString, string account)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT seq FROM account_events WHERE account = $1 ORDER BY seq", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = account });
        var seqs = new List<long>();
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            seqs.Add(reader.GetInt64(0));
        }

        return [.. seqs];
    }

    /// <summary>Rows in every table the gateway writes, to prove a rejected request changed nothing.</summary>
    public static Task<long> TotalRowsAsync(string connectionString) => CountAsync(connectionString,
        "SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM message_statuses) + (SELECT count(*) FROM contacts) " +
        "+ (SELECT count(*) FROM conversations) + (SELECT count(*) FROM account_updates) + (SELECT count(*) FROM accounts) " +
        "+ (SELECT count(*) FROM account_events)");
}
