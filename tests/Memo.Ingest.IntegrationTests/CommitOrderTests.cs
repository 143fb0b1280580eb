using System.Collections.Concurrent;
using System.Net;
using Memo.Ingest.TestSupport;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// The commit-order promise: with many senders, two gateway processes' worth of writers and sequencers on one database
/// (sharing the account shards between them), and readers polling <c>seq &gt; cursor</c> during the run, every
/// acknowledged row is seen exactly once and seqs only grow per account. A seq allocated before commit (a plain
/// sequence) fails this test: a reader skips rows that commit late.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class CommitOrderTests(PostgresFixture postgres)
{
    private const int Accounts = 20;
    private const int Senders = 16;
    private const int PostsPerSender = 60;

    [Fact]
    public async Task ConcurrentSendersAndTwoGateways_CursorReadersSeeEveryRowOnceInSeqOrder()
    {
        string connectionString = await postgres.Server.CreateDatabaseAsync("order");
        // Small linger and several writers per instance make interleaved transactions on one account likely.
        string[] settings = ["--Memo:Ingest:Writers=3", "--Memo:Ingest:BatchLingerMilliseconds=0"];
        await using GatewayHost first = await GatewayHost.StartAsync(connectionString, settings);
        await using GatewayHost second = await GatewayHost.StartAsync(connectionString, settings);
        string run = Guid.NewGuid().ToString("N")[..8];
        string[] accounts = Enumerable.Range(0, Accounts).Select(i => $"PN{run}{i:D2}").ToArray();

        var acknowledged = new ConcurrentDictionary<string, byte>();
        using var sendersDone = new CancellationTokenSource();
        var readers = accounts.Select(a => FollowAsync(first.Client, a, sendersDone.Token)).ToArray();

        var senders = Enumerable.Range(0, Senders).Select(sender => Task.Run(async () =>
        {
            var random = new Random(sender);
            for (int post = 0; post < PostsPerSender; post++)
            {
                GatewayHost gateway = post % 2 == 0 ? first : second;
                // Each POST carries 1-3 messages for one or two accounts, like Meta's batches.
                string account = accounts[random.Next(Accounts)];
                var wamids = Enumerable.Range(0, 1 + random.Next(3)).Select(m => $"wamid.{run}.{sender}.{post}.{m}").ToArray();
                string body = WebhookPayloads.Envelope(account, messages: wamids.Select((w, m) => WebhookPayloads.TextMessage(w, $"49{sender}", 1700000000 + post, "m")));
                // The acknowledgement alone (no wait for sequencing), so that senders keep the sequencers busy.
                using HttpResponseMessage response = await gateway.Client.SendAsync(WebhookRequest.Create(System.Text.Encoding.UTF8.GetBytes(body), GatewayHost.Secret));
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                foreach (string wamid in wamids)
                {
                    acknowledged[account + "/" + wamid] = 0;
                }
            }
        })).ToArray();

        await Task.WhenAll(senders);
        await first.SequencedAsync();
        sendersDone.Cancel();
        var seenKeys = new HashSet<string>();
        foreach (var (account, seen) in await Task.WhenAll(readers))
        {
            // Strictly increasing seqs, and no wamid twice (messages are never updated in this test).
            Assert.True(seen.Zip(seen.Skip(1)).All(static p => p.First.Seq < p.Second.Seq), $"{account}: seqs not increasing");
            Assert.Equal(seen.Count, seen.Select(static s => s.Wamid).Distinct().Count());
            foreach (var (_, wamid) in seen)
            {
                Assert.True(seenKeys.Add(account + "/" + wamid));
            }
        }

        // Every acknowledged message was seen by the live readers, and nothing else was.
        Assert.True(acknowledged.Keys.ToHashSet().SetEquals(seenKeys), $"acknowledged {acknowledged.Count}, seen {seenKeys.Count}");
    }

    /// <summary>Polls one account's messages with a cursor until the senders are done and a final page is empty.</summary>
    internal static async Task<(string Account, List<(long Seq, string Wamid)> Seen)> FollowAsync(HttpClient client, string account, CancellationToken sendersDone)
    {
        var seen = new List<(long, string)>();
        long cursor = 0;
        while (true)
        {
            bool finalPass = sendersDone.IsCancellationRequested;
            SyncClient.Page page = await SyncClient.GetPageAsync(client, account, "messages", cursor, limit: 50);
            foreach (var item in page.Items)
            {
                seen.Add((item.GetProperty("seq").GetInt64(), item.GetProperty("wamid").GetString()!));
            }

            cursor = page.HasMore ? page.Items[^1].GetProperty("seq").GetInt64() : page.LatestSeq;
            if (!page.HasMore && finalPass)
            {
                return (account, seen);
            }

            if (!page.HasMore)
            {
                await Task.Delay(5, CancellationToken.None);
            }
        }
    }

    /// <summary>
    /// Arrival order (docs/API.md): webhooks of one account acknowledged one after another are numbered in that order,
    /// also when different writers acknowledged them and they wait in the inbox together. Inbox ids handed out in
    /// blocks per writer session (an identity with a cache) fail this: each writer's block numbers its records first.
    /// </summary>
    [Fact]
    public async Task WebhooksAcknowledgedOneAfterAnother_ByDifferentWriters_AreNumberedInThatOrder()
    {
        string database = await postgres.Server.CreateDatabaseAsync("arrival_order");
        const int webhooks = 40;
        string[] sent = [.. Enumerable.Range(0, webhooks).Select(static i => $"wamid.arrival.{i:D3}")];
        await using (GatewayHost acknowledger = await GatewayHost.StartAsync(database, "--Memo:Sequencer:Loops=0", "--Memo:Ingest:Writers=4"))
        {
            for (int i = 0; i < webhooks; i++)
            {
                // Not PostWebhookAsync: it waits for sequencing, and nothing sequences here.
                using HttpResponseMessage response = await acknowledger.Client.SendAsync(WebhookRequest.Create(System.Text.Encoding.UTF8.GetBytes(
                    WebhookPayloads.Envelope("PNarrival", messages: [WebhookPayloads.TextMessage(sent[i], "4915550100", 1700000000, $"m{i}")])), GatewayHost.Secret));
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
        }

        await using GatewayHost sequencer = await GatewayHost.StartAsync(database);
        await sequencer.SequencedAsync();
        string numbered = await Database.TextAsync(database,
            "SELECT string_agg(key, ',' ORDER BY seq) FROM account_events WHERE account = 'PNarrival' AND kind = 1");
        Assert.Equal(string.Join(',', sent), numbered);
    }
}
