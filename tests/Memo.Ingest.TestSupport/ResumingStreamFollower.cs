namespace Memo.Ingest.TestSupport;

/// <summary>
/// Follows one account's live stream the way a client application should: when its connection ends (the instance
/// died, or it was told to resync), it reconnects to the next instance with <c>since=account:lastSeq</c>. Every event
/// received on every connection is kept in arrival order, so a test can show there was no gap and no duplicate.
/// </summary>
public sealed class ResumingStreamFollower : IAsyncDisposable
{
    private readonly IReadOnlyList<Uri> _instances;
    private readonly string _token;
    private readonly string _account;
    private readonly bool _webSocket;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<long> _earlier = [];
    private readonly Lock _gate = new();
    private readonly Task _following;
    private StreamClient? _current;

    private ResumingStreamFollower(IReadOnlyList<Uri> instances, int firstInstance, string token, string account, bool webSocket)
    {
        _instances = instances;
        _token = token;
        _account = account;
        _webSocket = webSocket;
        _following = Task.Run(() => FollowAsync(firstInstance));
    }

    public string Account => _account;

    public string Transport => _webSocket ? "ws" : "sse";

    /// <summary>How many times the follower had to connect again.</summary>
    public int Reconnects { get; private set; }

    public static ResumingStreamFollower Start(IReadOnlyList<Uri> instances, int firstInstance, string token, string account, bool webSocket) =>
        new(instances, firstInstance, token, account, webSocket);

    /// <summary>The seqs of every event received so far, over all connections, in arrival order.</summary>
    public List<long> Seqs()
    {
        lock (_gate)
        {
            return [.. _earlier, .. EventsOf(_current)];
        }
    }

    private IEnumerable<long> EventsOf(StreamClient? client) =>
        client is null ? [] : client.Events.Where(e => e.Account == _account).Select(static e => e.Seq);

    private async Task FollowAsync(int instance)
    {
        while (!_stop.IsCancellationRequested)
        {
            long since;
            lock (_gate)
            {
                since = _earlier.Count > 0 ? _earlier[^1] : 0;
            }

            Uri address = _instances[instance % _instances.Count];
            StreamClient client;
            try
            {
                string cursor = $"{_account}:{since}";
                client = _webSocket
                    ? await StreamClient.OpenWebSocketAsync(address, _token, _account, since: cursor)
                    : await StreamClient.OpenSseAsync(address, _token, _account, since: cursor);
            }
            catch (Exception e) when (e is HttpRequestException or System.Net.WebSockets.WebSocketException or IOException)
            {
                instance++;
                await Task.Delay(100);
                continue;
            }

            lock (_gate)
            {
                _current = client;
            }

            while (!client.Ended && !client.Messages.Any(static m => m.Type == "resync") && !_stop.IsCancellationRequested)
            {
                await Task.Delay(20);
            }

            await client.DisposeAsync();
            lock (_gate)
            {
                _earlier.AddRange(EventsOf(client));
                _current = null;
            }

            if (!_stop.IsCancellationRequested)
            {
                Reconnects++;
                instance++;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _following;
        _stop.Dispose();
    }
}
