using System.Net.Http.Headers;
using System.Text.Json;
using Memo.Ingest.TestSupport;

namespace Memo.Ingest.Load.Faults;

/// <summary>
/// A client of the cursor sync API following one account through the whole suite: it pages
/// <c>since_seq=cursor</c>, and when an instance fails it moves to the next. It keeps every row in the order seen,
/// so the suite can show that seqs only grew and that no committed row was skipped, whatever failed meanwhile.
/// </summary>
internal sealed class CursorReader : IAsyncDisposable
{
    private readonly HttpClient[] _instances;
    private readonly string _account;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<(long Seq, string Wamid)> _seen = [];
    private readonly Lock _gate = new();
    private readonly Task _reading;
    private long _cursor;

    public CursorReader(IEnumerable<Uri> instances, string account)
    {
        string token = GatewayHost.MintToken(account);
        _instances = [.. instances.Select(address =>
        {
            var client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(5) };
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            return client;
        })];
        _account = account;
        _reading = Task.Run(ReadAsync);
    }

    public string Account => _account;

    public long Cursor => Interlocked.Read(ref _cursor);

    public List<(long Seq, string Wamid)> Seen()
    {
        lock (_gate)
        {
            return [.. _seen];
        }
    }

    private async Task ReadAsync()
    {
        int instance = 0;
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                SyncClient.Page page = await SyncClient.GetPageAsync(_instances[instance % _instances.Length], _account, "messages", Cursor, limit: 200);
                lock (_gate)
                {
                    foreach (JsonElement item in page.Items)
                    {
                        _seen.Add((item.GetProperty("seq").GetInt64(), item.GetProperty("wamid").GetString()!));
                    }
                }

                Interlocked.Exchange(ref _cursor, page.HasMore ? page.Items[^1].GetProperty("seq").GetInt64() : page.LatestSeq);
                if (!page.HasMore)
                {
                    await Task.Delay(20);
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException or IOException)
            {
                instance++;
                await Task.Delay(100);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _reading;
        foreach (HttpClient client in _instances)
        {
            client.Dispose();
        }

        _stop.Dispose();
    }
}
