using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;

namespace Memo.Ingest.TestSupport;

/// <summary>One message received on a live stream: an event or a control message (ready, resync).</summary>
public sealed record StreamMessage(string Type, string? Account, long Seq, string? Kind, JsonElement Root, string? SseId, byte[]? Binary);

/// <summary>
/// A live-stream client for tests, over SSE or WebSocket, collecting every message it receives in order.
/// </summary>
public sealed class StreamClient : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<StreamMessage> _messages = new();
    private Task _reading = Task.CompletedTask;
    private HttpClient? _http;
    private ClientWebSocket? _socket;
    private SocketsHttpHandler? _handler;

    private StreamClient()
    {
    }

    public IReadOnlyCollection<StreamMessage> Messages => _messages;

    public IEnumerable<StreamMessage> Events => _messages.Where(static m => m.Type == "event");

    /// <summary>How the reading ended: null while it runs or when it ended normally.</summary>
    public Exception? Failure { get; private set; }

    public bool Ended => _reading.IsCompleted;

    public static async Task<StreamClient> OpenSseAsync(Uri gateway, string token, string accounts, string? since = null, string? lastEventId = null)
    {
        var client = new StreamClient { _http = new HttpClient { BaseAddress = gateway, Timeout = Timeout.InfiniteTimeSpan } };
        var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/stream/sse?accounts={accounts}{(since is null ? "" : "&since=" + since)}");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (lastEventId is not null)
        {
            request.Headers.Add("Last-Event-ID", lastEventId);
        }

        HttpResponseMessage response = await client._http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        client._reading = Task.Run(() => client.ReadSseAsync(response));
        return client;
    }

    public static async Task<StreamClient> OpenWebSocketAsync(Uri gateway, string token, string accounts, string? since = null,
        string? subprotocol = null, bool read = true, int? receiveBufferBytes = null)
    {
        var client = new StreamClient { _socket = new ClientWebSocket() };
        client._socket.Options.SetRequestHeader("Authorization", "Bearer " + token);
        if (subprotocol is not null)
        {
            client._socket.Options.AddSubProtocol(subprotocol);
        }

        var uri = new Uri($"ws://{gateway.Authority}/v1/stream/ws?accounts={accounts}{(since is null ? "" : "&since=" + since)}");
        var handler = client._handler = new SocketsHttpHandler();
        if (receiveBufferBytes is int size)
        {
            // A small receive window, so that a client that stops reading pushes back on the server quickly.
            handler.ConnectCallback = async (context, cancellationToken) =>
            {
                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { ReceiveBufferSize = size };
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
            };
        }

        await client._socket.ConnectAsync(uri, new HttpMessageInvoker(handler, disposeHandler: false), CancellationToken.None);
        if (read)
        {
            client.StartReading();
        }

        return client;
    }

    /// <summary>For a WebSocket opened with <c>read: false</c>: starts reading now.</summary>
    public void StartReading() => _reading = Task.Run(ReadWebSocketAsync);

    public string? SubProtocol => _socket?.SubProtocol;

    public WebSocketCloseStatus? CloseStatus => _socket?.CloseStatus;

    /// <summary>The last SSE id received (every account's cursor), for Last-Event-ID.</summary>
    public string? LastSseId => _messages.LastOrDefault(static m => m.SseId is not null)?.SseId;

    public Task WaitForAsync(Func<IReadOnlyCollection<StreamMessage>, bool> condition, string what, int seconds = 30) =>
        Eventually.TrueAsync(() => condition(_messages) || (Ended && condition(_messages)), what, seconds);

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        await _stop.CancelAsync();
        if (_socket is not null)
        {
            _socket.Abort();
            _socket.Dispose();
        }

        _http?.Dispose();
        _handler?.Dispose();
        try
        {
            await _reading;
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or HttpRequestException or WebSocketException or ObjectDisposedException)
        {
        }

    }

    private async Task ReadSseAsync(HttpResponseMessage response)
    {
        try
        {
            using (response)
            await using (Stream body = await response.Content.ReadAsStreamAsync(_stop.Token))
            using (var reader = new StreamReader(body, Encoding.UTF8))
            {
                string? id = null;
                string? data = null;
                while (await reader.ReadLineAsync(_stop.Token) is { } line)
                {
                    if (line.Length == 0)
                    {
                        if (data is not null)
                        {
                            Add(data, id, null);
                        }

                        id = data = null;
                    }
                    else if (line.StartsWith("id: ", StringComparison.Ordinal))
                    {
                        id = line[4..];
                    }
                    else if (line.StartsWith("data: ", StringComparison.Ordinal))
                    {
                        data = line[6..];
                    }
                }
            }
        }
        catch (Exception e) when (!_stop.IsCancellationRequested)
        {
            Failure = e;
        }
    }

    private async Task ReadWebSocketAsync()
    {
        var buffer = new byte[64 * 1024];
        var message = new MemoryStream();
        try
        {
            while (true)
            {
                WebSocketReceiveResult result = await _socket!.ReceiveAsync(buffer, _stop.Token);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    // A well-behaved client answers the server's close frame.
                    await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
                    return;
                }

                message.Write(buffer, 0, result.Count);
                if (!result.EndOfMessage)
                {
                    continue;
                }

                byte[] bytes = message.ToArray();
                message.SetLength(0);
                if (result.MessageType == WebSocketMessageType.Binary)
                {
                    _messages.Enqueue(new StreamMessage("event", null, 0, null, default, null, bytes));
                }
                else
                {
                    Add(Encoding.UTF8.GetString(bytes), null, null);
                }
            }
        }
        catch (Exception e) when (!_stop.IsCancellationRequested)
        {
            Failure = e;
        }
    }

    private void Add(string json, string? sseId, byte[]? binary)
    {
        JsonElement root = JsonDocument.Parse(json).RootElement.Clone();
        string type = root.GetProperty("type").GetString()!;
        _messages.Enqueue(type == "event"
            ? new StreamMessage(type, root.GetProperty("account").GetString(), root.GetProperty("seq").GetInt64(), root.GetProperty("kind").GetString(), root, sseId, binary)
            : new StreamMessage(type, null, 0, null, root, sseId, binary));
    }
}
