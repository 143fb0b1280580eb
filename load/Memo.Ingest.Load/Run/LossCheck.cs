using System.Net;
using System.Net.Http.Headers;
using Memo.Ingest.Load.OpenModel;
using Memo.Ingest.TestSupport;

namespace Memo.Ingest.Load.Run;

/// <summary>
/// After a run, through the sync API as a client would read it: every message of every acknowledged POST is stored
/// exactly once, and nothing is stored from POSTs that were refused (only those that got no answer at all may or
/// may not have been committed, as Meta would learn on its retry).
/// </summary>
internal static class LossCheck
{
    public sealed record Result(int Expected, int Stored, int Missing, int Duplicated, int Unexpected)
    {
        public bool Passed => Missing == 0 && Duplicated == 0 && Unexpected == 0;
    }

    public static async Task<Result> RunAsync(Uri gateway, PayloadMix mix, RequestSample[] samples)
    {
        var expected = new HashSet<string>(StringComparer.Ordinal);
        var uncertain = new HashSet<string>(StringComparer.Ordinal);
        for (long i = 0; i < samples.Length; i++)
        {
            string account = mix.AccountOf(i);
            IEnumerable<string> ids = mix.MessageIds(i).Concat(mix.OutboundIds(i)).Select(id => account + "/" + id);
            if (samples[i].Status == (short)HttpStatusCode.OK)
            {
                expected.UnionWith(ids);
            }
            else if (samples[i].Status == 0)
            {
                uncertain.UnionWith(ids);
            }
        }

        using var client = new HttpClient { BaseAddress = gateway, Timeout = TimeSpan.FromMinutes(2) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", GatewayHost.MintToken("*"));
        var stored = new List<string>();
        foreach (string account in mix.Accounts)
        {
            foreach (System.Text.Json.JsonElement item in await SyncClient.GetAllAsync(client, account, "messages"))
            {
                stored.Add(account + "/" + item.GetProperty("wamid").GetString());
            }
        }

        var distinct = new HashSet<string>(stored, StringComparer.Ordinal);
        return new Result(
            Expected: expected.Count,
            Stored: distinct.Count,
            Missing: expected.Count(id => !distinct.Contains(id)),
            Duplicated: stored.Count - distinct.Count,
            Unexpected: distinct.Count(id => !expected.Contains(id) && !uncertain.Contains(id)));
    }
}
