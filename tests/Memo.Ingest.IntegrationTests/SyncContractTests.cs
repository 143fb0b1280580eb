using System.Net;
using System.Text.Json;
using Memo.Ingest.TestSupport;
using Npgsql;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// The cursor contract of the sync API (docs/API.md): <c>latest_seq</c> is the cursor to continue from. A client that
/// always continues from <c>latest_seq</c>, and one that continues from the last item's seq while <c>has_more</c> is
/// true, both end with every row, each at its latest version, and never see a seq twice, while writers insert new
/// messages and move older ones forward with statuses.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class SyncContractTests(PostgresFixture postgres)
{
    public enum CursorLoop
    {
        /// <summary><c>since = page.latest_seq</c> after every page.</summary>
        LatestSeq,

        /// <summary><c>since = last item's seq</c> while <c>has_more</c>, then <c>latest_seq</c>.</summary>
        LastItem,
    }

    [Theory]
    [InlineData(CursorLoop.LatestSeq, 1)]
    [InlineData(CursorLoop.LatestSeq, 7)]
    [InlineData(CursorLoop.LatestSeq, 100)]
    [InlineData(CursorLoop.LastItem, 1)]
    [InlineData(CursorLoop.LastItem, 7)]
    [InlineData(CursorLoop.LastItem, 100)]
    public async Task AFollowerOfEitherCursorLoop_SeesEveryRowOnce_WhileWritersRun(CursorLoop loop, int limit)
    {
        string database = await postgres.Server.CreateDatabaseAsync($"sync_{loop}_{limit}".ToLowerInvariant());
        await using GatewayHost gateway = await GatewayHost.StartAsync(database);
        const string Account = "PNcursor";
        // Rows already there before the follower starts: more than a page at every page size.
        await WriteAsync(gateway, Account, round: 0);

        Task writers = Task.Run(async () =>
        {
            for (int round = 1; round <= 12; round++)
            {
                await WriteAsync(gateway, Account, round);
                await Task.Delay(20);
            }
        });

        var latest = new Dictionary<string, (long Seq, string? Status)>();
        long since = 0;
        long lastSeen = 0;
        bool writersDone = false;
        while (true)
        {
            writersDone = writers.IsCompleted;
            SyncClient.Page page = await SyncClient.GetPageAsync(gateway.Client, Account, "messages", since, limit);
            foreach (JsonElement item in page.Items)
            {
                long seq = item.GetProperty("seq").GetInt64();
                Assert.True(seq > lastSeen, $"seq {seq} after {lastSeen}: a row seen twice or out of order");
                lastSeen = seq;
                latest[item.GetProperty("wamid").GetString()!] = (seq, item.GetProperty("status").GetString());
            }

            Assert.True(page.Items.Count <= limit);
            if (page.HasMore)
            {
                Assert.Equal(page.Items[^1].GetProperty("seq").GetInt64(), page.LatestSeq);
            }
            else if (page.Items.Count > 0)
            {
                Assert.True(page.LatestSeq >= page.Items[^1].GetProperty("seq").GetInt64());
            }

            since = loop == CursorLoop.LastItem && page.HasMore ? page.Items[^1].GetProperty("seq").GetInt64() : page.LatestSeq;
            if (!page.HasMore && writersDone)
            {
                break;
            }
        }

        await writers;
        Dictionary<string, (long, string?)> stored = await ReadMessagesAsync(database, Account);
        Assert.Equal(13 * 20, stored.Count);
        Assert.Equal(stored.OrderBy(static p => p.Key), latest.OrderBy(static p => p.Key));
    }

    /// <summary>Twenty new messages, and statuses for the previous round's, which move those rows to new seqs.</summary>
    private static async Task WriteAsync(GatewayHost gateway, string account, int round)
    {
        string body = WebhookPayloads.Envelope(account,
            messages: Enumerable.Range(0, 20).Select(i => WebhookPayloads.TextMessage($"wamid.c.{round}.{i}", "491", 1700000000 + round, "m")),
            statuses: round == 0 ? null : Enumerable.Range(0, 20).Where(i => i % 2 == 0)
                .Select(i => WebhookPayloads.Status($"wamid.c.{round - 1}.{i}", "read", 1700000100 + round, "491")));
        using HttpResponseMessage response = await gateway.PostWebhookAsync(body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private static async Task<Dictionary<string, (long, string?)>> ReadMessagesAsync(string database, string account)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT wamid, seq, status FROM messages WHERE account = $1", connection);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = account });
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
        var rows = new Dictionary<string, (long, string?)>();
        while (await reader.ReadAsync())
        {
            rows[reader.GetString(0)] = (reader.GetInt64(1), reader.IsDBNull(2) ? null : reader.GetString(2));
        }

        return rows;
    }
}
