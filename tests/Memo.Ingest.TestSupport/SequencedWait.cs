using Npgsql;

namespace Memo.Ingest.TestSupport;

/// <summary>
/// A 200 means the records are durably in the inbox; the sequencers make them visible moments later. Tests that read
/// what they have just posted wait here until every inbox record that existed when they were acknowledged is
/// sequenced (records appended by other senders meanwhile may be waited for too, never fewer).
/// </summary>
public static class SequencedWait
{
    public static async Task UntilSequencedAsync(string connectionString, int seconds = 30)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        long last;
        await using (var command = new NpgsqlCommand("SELECT last_value FROM inbox_id_seq", connection))
        {
            last = Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
        }

        await using var pending = new NpgsqlCommand("SELECT EXISTS (SELECT 1 FROM inbox WHERE id <= $1)", connection);
        pending.Parameters.Add(new NpgsqlParameter<long> { TypedValue = last });
        await Eventually.TrueAsync(async () => !(bool)(await pending.ExecuteScalarAsync())!, "acknowledged records are sequenced", seconds);
    }
}
