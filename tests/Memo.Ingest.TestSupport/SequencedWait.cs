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
        long live;
        long history;
        // Each lane hands out its own ids (live ones from the identity, history ones from 2^62 on: migration 0010). Read
        // through pg_sequences, so that the load tool also drives builds from before that migration (comparisons with
        // older commits, docs/PERFORMANCE.md); a history sequence never used reads as its start.
        await using (var command = new NpgsqlCommand("SELECT (SELECT last_value FROM inbox_id_seq), COALESCE((SELECT last_value FROM pg_sequences WHERE sequencename = 'inbox_history_id_seq'), 4611686018427387904)", connection))
        await using (NpgsqlDataReader reader = await command.ExecuteReaderAsync())
        {
            await reader.ReadAsync();
            live = reader.GetInt64(0);
            history = reader.GetInt64(1);
        }

        await using var pending = new NpgsqlCommand(
            "SELECT EXISTS (SELECT 1 FROM inbox WHERE id <= $1 OR id >= 4611686018427387904 AND id <= $2)", connection);
        pending.Parameters.Add(new NpgsqlParameter<long> { TypedValue = live });
        pending.Parameters.Add(new NpgsqlParameter<long> { TypedValue = history });
        await Eventually.TrueAsync(async () => !(bool)(await pending.ExecuteScalarAsync())!, "acknowledged records are sequenced", seconds);
    }
}
