using System.Diagnostics;
using System.Globalization;
using Memo.Ingest.TestSupport;
using Npgsql;
using NpgsqlTypes;

namespace Memo.Ingest.Load.Ceilings;

/// <summary>
/// The raw PostgreSQL ceiling for our rows: binary COPY of message rows (the messages table's columns, with the same
/// text and jsonb payload an inbound text message has) in durable transactions of 5,000 rows, by one and by two
/// writers at once, on the same server and machine as the gateway. Nothing else: no seqs, no events, no upserts.
/// </summary>
internal static class CopyCeiling
{
    private const string Table = """
        CREATE TABLE copy_ceiling (
            account text NOT NULL, wamid text NOT NULL, seq bigint NOT NULL, direction text NOT NULL,
            from_wa_id text, ts timestamptz NOT NULL, type text NOT NULL, body text, payload jsonb,
            PRIMARY KEY (account, wamid))
        """;

    public static async Task<double> RowsPerSecondAsync(string database, int writers, TimeSpan duration, int rowsPerTransaction = 5000)
    {
        await using (var connection = new NpgsqlConnection(database))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"DROP TABLE IF EXISTS copy_ceiling; {Table}", connection);
            await create.ExecuteNonQueryAsync();
        }

        long rows = 0;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, writers).Select(writer => Task.Run(async () =>
        {
            await using var connection = new NpgsqlConnection(database);
            await connection.OpenAsync();
            for (long batch = 0; clock.Elapsed < duration; batch++)
            {
                await using NpgsqlTransaction transaction = await connection.BeginTransactionAsync();
                await using (NpgsqlBinaryImporter copy = await connection.BeginBinaryImportAsync(
                    "COPY copy_ceiling (account, wamid, seq, direction, from_wa_id, ts, type, body, payload) FROM STDIN (FORMAT BINARY)"))
                {
                    for (int i = 0; i < rowsPerTransaction; i++)
                    {
                        long n = batch * rowsPerTransaction + i;
                        string wamid = string.Create(CultureInfo.InvariantCulture, $"wamid.copy.{writer}.{n}");
                        await copy.StartRowAsync();
                        await copy.WriteAsync($"PNcopy{n % 8}", NpgsqlDbType.Text);
                        await copy.WriteAsync(wamid, NpgsqlDbType.Text);
                        await copy.WriteAsync(n, NpgsqlDbType.Bigint);
                        await copy.WriteAsync("inbound", NpgsqlDbType.Text);
                        await copy.WriteAsync("4917000001", NpgsqlDbType.Text);
                        await copy.WriteAsync(DateTime.UnixEpoch.AddSeconds(1700000000 + n), NpgsqlDbType.TimestampTz);
                        await copy.WriteAsync("text", NpgsqlDbType.Text);
                        await copy.WriteAsync("t=0;hello " + n, NpgsqlDbType.Text);
                        await copy.WriteAsync(WebhookPayloads.TextMessage(wamid, "4917000001", 1700000000 + n, "t=0;hello " + n), NpgsqlDbType.Jsonb);
                    }

                    await copy.CompleteAsync();
                }

                await transaction.CommitAsync();
                Interlocked.Add(ref rows, rowsPerTransaction);
            }
        })));

        return rows / clock.Elapsed.TotalSeconds;
    }
}
