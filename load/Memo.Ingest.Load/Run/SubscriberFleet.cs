using System.Buffers;
using System.Buffers.Text;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using Memo.Ingest.TestSupport;

namespace Memo.Ingest.Load.Run;

/// <summary>
/// Many stream subscribers in one process, alternately WebSocket and SSE, each following one account live. They are
/// lean on purpose (no JSON parsing; a scan for <c>"seq":</c> and for the message text's <c>t=µs;</c> send time), so
/// thousands fit beside the gateway on two cores. Each measures webhook-sent → event-received latency and checks
/// that its seqs only increase (a gap or a repeat is counted).
/// </summary>
internal sealed class SubscriberFleet : IAsyncDisposable
{
    private readonly List<Subscriber> _subscribers = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _running = [];

    public static async Task<SubscriberFleet> ConnectAsync(Uri gateway, string[] accounts, int count, Stopwatch clock)
    {
        var fleet = new SubscriberFleet();
        string token = GatewayHost.MintToken(accounts);
        var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue }) { BaseAddress = gateway, Timeout = Timeout.InfiniteTimeSpan };
        for (int i = 0; i < count; i++)
        {
            var subscriber = new Subscriber(accounts[i % accounts.Length], clock);
            fleet._subscribers.Add(subscriber);
            // Alternate transports along the fleet and along each account's own subscribers, so that an account
            // followed by several is followed over both, and the two can be compared (UnequalAccountsAsync).
            fleet._running.Add((i + i / accounts.Length) % 2 == 0
                ? await subscriber.StartWebSocketAsync(gateway, token, fleet._stop.Token)
                : await subscriber.StartSseAsync(http, token, fleet._stop.Token));
        }

        // Each subscriber starts live: wait until every one has its stream open.
        await Eventually.TrueAsync(() => fleet._subscribers.All(static s => s.Ready), $"{count} subscribers ready", 120);
        return fleet;
    }

    public long Events => _subscribers.Sum(static s => s.Events);

    /// <summary>Events received by the SSE half of the fleet (the rest came over WebSockets).</summary>
    public long SseEvents => _subscribers.Where(static s => s.OverSse).Sum(static s => s.Events);

    public long OrderViolations => _subscribers.Sum(static s => s.OrderViolations);

    /// <summary>From the first event any subscriber received to the last one (µs of the run's clock).</summary>
    public double DeliverySpanSeconds => _subscribers.Any(static s => s.Events > 0)
        ? (_subscribers.Max(static s => s.LastEventMicroseconds) - _subscribers.Where(static s => s.Events > 0).Min(static s => s.FirstEventMicroseconds)) / 1e6
        : 0;

    public int Failed => _subscribers.Count(static s => s.Failure is not null);

    /// <summary>
    /// Accounts whose subscribers (those that kept their stream) did not all receive the same number of events, once
    /// <paramref name="settle"/> has passed or as soon as they all agree. Every subscriber starts live before the
    /// first webhook, so each must receive every event of its account: a subscriber or a transport that drops
    /// events, including one that receives none at all (which the order check cannot see), shows here.
    /// </summary>
    public async Task<int> UnequalAccountsAsync(TimeSpan settle)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            int unequal = _subscribers.Where(static s => s.Failure is null).GroupBy(static s => s.Account)
                .Count(static account => account.Select(static s => s.Events).Distinct().Skip(1).Any());
            if (unequal == 0 || waited.Elapsed > settle)
            {
                return unequal;
            }

            await Task.Delay(100);
        }
    }

    /// <summary>Webhook-sent → event-received latencies (µs) of every text message event received.</summary>
    public IEnumerable<int> Latencies() => _subscribers.SelectMany(static s => s.Latencies());

    public IEnumerable<(long ReceivedMicroseconds, int LatencyMicroseconds)> Timeline() => _subscribers.SelectMany(static s => s.Timeline());

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_running);
        _stop.Dispose();
    }

    private sealed class Subscriber(string account, Stopwatch clock)
    {
        private readonly List<(long Received, int Latency)> _samples = [];
        private long _lastSeq = -1;

        public string Account => account;

        public bool Ready { get; private set; }

        public bool OverSse { get; private set; }

        public long Events { get; private set; }

        public long OrderViolations { get; private set; }

        public long FirstEventMicroseconds { get; private set; }

        public long LastEventMicroseconds { get; private set; }

        public Exception? Failure { get; private set; }

        public IEnumerable<int> Latencies()
        {
            lock (_samples)
            {
                return [.. _samples.Select(static s => s.Latency)];
            }
        }

        public IEnumerable<(long, int)> Timeline()
        {
            lock (_samples)
            {
                return [.. _samples];
            }
        }

        public async Task<Task> StartWebSocketAsync(Uri gateway, string token, CancellationToken stop)
        {
            var socket = new ClientWebSocket();
            socket.Options.SetRequestHeader("Authorization", "Bearer " + token);
            await socket.ConnectAsync(new Uri($"ws://{gateway.Authority}/v1/stream/ws?accounts={account}"), stop);
            return Task.Run(async () =>
            {
                byte[] buffer = new byte[16 * 1024];
                try
                {
                    using (socket)
                    {
                        while (!stop.IsCancellationRequested)
                        {
                            int length = 0;
                            ValueWebSocketReceiveResult result;
                            do
                            {
                                if (length == buffer.Length)
                                {
                                    Array.Resize(ref buffer, buffer.Length * 2);
                                }

                                result = await socket.ReceiveAsync(buffer.AsMemory(length), stop);
                                length += result.Count;
                            }
                            while (!result.EndOfMessage);

                            if (result.MessageType == WebSocketMessageType.Close)
                            {
                                Failure = new IOException("The server closed the stream.");
                                return;
                            }

                            OnMessage(buffer.AsSpan(0, length));
                        }
                    }
                }
                catch (OperationCanceledException)
                {
                }
                catch (Exception e) when (e is WebSocketException or IOException)
                {
                    Failure = e;
                }
            }, CancellationToken.None); // the loop ends on 'stop' itself, after closing its stream
        }

        public async Task<Task> StartSseAsync(HttpClient http, string token, CancellationToken stop)
        {
            var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/stream/sse?accounts={account}");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            OverSse = true;
            HttpResponseMessage response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, stop);
            response.EnsureSuccessStatusCode();
            return Task.Run(async () =>
            {
                try
                {
                    using (response)
                    {
                        // Lines read as bytes from a pipe, without a string per line: thousands of subscribers share
                        // this process's two cores with the gateway, and a string and a byte copy per event made
                        // this process collect garbage every two seconds (dotnet-counters).
                        PipeReader reader = PipeReader.Create(await response.Content.ReadAsStreamAsync(stop));
                        byte[] spanned = new byte[16 * 1024];
                        while (true)
                        {
                            ReadResult read = await reader.ReadAsync(stop);
                            ReadOnlySequence<byte> buffer = read.Buffer;
                            while (buffer.PositionOf((byte)'\n') is SequencePosition end)
                            {
                                ReadOnlySequence<byte> line = buffer.Slice(0, end);
                                buffer = buffer.Slice(buffer.GetPosition(1, end));
                                if (line.Length > 6 && (line.IsSingleSegment ? line.FirstSpan : Flatten(line, ref spanned)) is var bytes
                                    && bytes.StartsWith("data: "u8))
                                {
                                    OnMessage(bytes[6..]);
                                }
                            }

                            reader.AdvanceTo(buffer.Start, read.Buffer.End);
                            if (read.IsCompleted)
                            {
                                break;
                            }
                        }

                        await reader.CompleteAsync();
                        Failure = new IOException("The server ended the stream.");
                    }
                }
                catch (OperationCanceledException)
                {
                }
                catch (Exception e) when (e is HttpRequestException or IOException)
                {
                    Failure = e;
                }
            }, CancellationToken.None);
        }

        private static ReadOnlySpan<byte> Flatten(ReadOnlySequence<byte> line, ref byte[] buffer)
        {
            if (buffer.Length < line.Length)
            {
                buffer = new byte[(int)line.Length];
            }

            line.CopyTo(buffer);
            return buffer.AsSpan(0, (int)line.Length);
        }

        private void OnMessage(ReadOnlySpan<byte> message)
        {
            if (message.IndexOf("\"type\":\"ready\""u8) >= 0)
            {
                Ready = true;
                return;
            }

            if (message.IndexOf("\"type\":\"event\""u8) < 0)
            {
                return;
            }

            Events++;
            long received = (long)clock.Elapsed.TotalMicroseconds;
            FirstEventMicroseconds = Events == 1 ? received : FirstEventMicroseconds;
            LastEventMicroseconds = received;
            if (TryReadNumber(message, "\"seq\":"u8, out long seq))
            {
                if (_lastSeq >= 0 && seq != _lastSeq + 1)
                {
                    OrderViolations++;
                }

                _lastSeq = seq;
            }

            // Only a message.created event of a text message carries its send time.
            if (message.IndexOf("\"kind\":\"message.created\""u8) >= 0 && TryReadNumber(message, "\"text\":\"t="u8, out long sent))
            {
                long now = (long)clock.Elapsed.TotalMicroseconds;
                lock (_samples)
                {
                    _samples.Add((now, (int)Math.Min(now - sent, int.MaxValue)));
                }
            }
        }

        private static bool TryReadNumber(ReadOnlySpan<byte> message, ReadOnlySpan<byte> prefix, out long value)
        {
            int at = message.IndexOf(prefix);
            value = 0;
            return at >= 0 && Utf8Parser.TryParse(message[(at + prefix.Length)..], out value, out _);
        }
    }
}
