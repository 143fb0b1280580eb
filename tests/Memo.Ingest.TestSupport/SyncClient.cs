using System.Text.Json;

namespace Memo.Ingest.TestSupport;

/// <summary>Reads the cursor sync API the way a client would.</summary>
public static class SyncClient
{
    public sealed record Page(List<JsonElement> Items, long LatestSeq, bool HasMore);

    public static async Task<Page> GetPageAsync(HttpClient client, string account, string collection, long sinceSeq, int limit = 1000)
    {
        using HttpResponseMessage response = await client.GetAsync($"/v1/accounts/{account}/{collection}?since_seq={sinceSeq}&limit={limit}");
        response.EnsureSuccessStatusCode();
        using JsonDocument document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        JsonElement root = document.RootElement;
        var items = root.GetProperty("items").EnumerateArray().Select(static e => e.Clone()).ToList();
        return new Page(items, root.GetProperty("latest_seq").GetInt64(), root.GetProperty("has_more").GetBoolean());
    }

    /// <summary>Pages from since_seq=0 until has_more is false.</summary>
    public static async Task<List<JsonElement>> GetAllAsync(HttpClient client, string account, string collection)
    {
        var all = new List<JsonElement>();
        long cursor = 0;
        while (true)
        {
            Page page = await GetPageAsync(client, account, collection, cursor, 500);
            all.AddRange(page.Items);
            if (!page.HasMore)
            {
                return all;
            }

            cursor = page.Items[^1].GetProperty("seq").GetInt64();
        }
    }
}
