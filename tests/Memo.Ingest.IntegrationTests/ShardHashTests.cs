using System.Text;
using Memo.Ingest.Sequencing;
using Npgsql;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// <see cref="AccountShard"/>, which writers use to wake only the session holding an account's shard, gives the shard
/// PostgreSQL gives the same account in <c>inbox.shard</c>: a thousand strings of 0-40 characters, ASCII and not.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ShardHashTests(PostgresFixture postgres)
{
    [Fact]
    public async Task EveryString_HasTheShardThatPostgreSQLGivesIt()
    {
        string database = await postgres.Server.CreateDatabaseAsync("shardhash");
        var random = new Random(20261206);
        string[] alphabet = ["0", "1", "7", "9", "a", "Z", "_", ".", "é", "ß", "日", "本", "🙂"];
        string[] accounts = [.. Enumerable.Range(0, 1000).Select(i => string.Concat(Enumerable.Range(0, i % 41).Select(_ => alphabet[random.Next(alphabet.Length)])))];

        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT a, hashtext(a) & 63 FROM unnest($1::text[]) WITH ORDINALITY AS t(a, n) ORDER BY n", connection);
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = accounts });
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
        int compared = 0;
        var wrong = new List<string>();
        while (await reader.ReadAsync())
        {
            string account = reader.GetString(0);
            int expected = reader.GetInt32(1);
            int computed = AccountShard.Of(Encoding.UTF8.GetBytes(account));
            if (computed != expected)
            {
                wrong.Add($"'{account}' ({Encoding.UTF8.GetByteCount(account)} bytes): PostgreSQL {expected}, computed {computed}");
            }

            compared++;
        }

        Assert.Equal(accounts.Length, compared);
        Assert.Empty(wrong);
    }
}
