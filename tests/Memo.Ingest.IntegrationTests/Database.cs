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

    /// <summary>The one text value <paramref name="sql"/> returns (null as empty).</summary>
    public static async Task<string> TextAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync() as string ?? "";
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

    /// <summary>
    /// Every message was sequenced exactly once. <c>messages</c> cannot show a duplicate (its primary key forbids
    /// one), but a message sequenced twice leaves two <c>message.created</c> events in the log and counts twice in its
    /// conversation; returns what differs, empty when nothing does.
    /// </summary>
    public static async Task<string> SequencedTwiceAsync(string connectionString)
    {
        long twice = await CountAsync(connectionString,
            "SELECT count(*) FROM (SELECT 1 FROM account_events WHERE kind = 1 GROUP BY account, key HAVING count(*) > 1) d");
        long miscounted = await CountAsync(connectionString,
            "SELECT count(*) FROM conversations c WHERE c.message_count <> " +
            "(SELECT count(*) FROM messages m WHERE m.account = c.account AND m.contact = c.wa_id AND m.payload IS NOT NULL)");
        long events = await CountAsync(connectionString, "SELECT count(*) FROM account_events WHERE kind = 1");
        long messages = await CountAsync(connectionString, "SELECT count(*) FROM messages WHERE payload IS NOT NULL");
        return twice == 0 && miscounted == 0 && events == messages
            ? ""
            : $"{twice} messages with more than one message.created event, {miscounted} conversations miscounted, {events} message.created events for {messages} messages";
    }

    /// <summary>Rows in every table the gateway writes, to prove a rejected request changed nothing.</summary>
    public static Task<long> TotalRowsAsync(string connectionString) => CountAsync(connectionString,
        "SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM message_statuses) + (SELECT count(*) FROM contacts) " +
        "+ (SELECT count(*) FROM conversations) + (SELECT count(*) FROM account_updates) + (SELECT count(*) FROM accounts) " +
        "+ (SELECT count(*) FROM account_events)");
}
