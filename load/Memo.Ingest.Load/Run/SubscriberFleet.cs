using System.Diagnostics;
using System.Net;
using Memo.Ingest.TestSupport;

namespace Memo.Ingest.Load.Run;

/// <summary>
/// Many stream subscribers in one process, WebSocket and SSE, each following one account live. They are lean on
/// purpose, so that thousands fit beside the gateway on two cores: no JSON parsing (a scan for <c>"seq":</c> and for
/// the message text's <c>t=µs;</c> send time), and no task, socket engine or HTTP client per subscriber. A thread per
/// core waits on an epoll set of its share of the streams' sockets and reads each ready one with a non-blocking
/// <c>recv</c>; the subscribers decode their own frames (<see cref="WebSocketSubscriber"/>, <see cref="SseSubscriber"/>). With
/// ClientWebSocket and HttpClient, one awaited read per subscriber, the fleet of the 5,000-subscriber run took more
/// of a core than PostgreSQL did (docs/PERFORMANCE.md, twenty-first session).
/// </summary>
internal sealed class SubscriberFleet : IAsyncDisposable
{
    private readonly StreamSubscriber[] _subscribers;
    private readonly int[] _epolls;
    private readonly Thread[] _readers;
    private volatile bool _stopping;

    private SubscriberFleet(int count)
    {
        _subscribers = new StreamSubscriber[count];
        // One reader per core: the fleet's work is the same however it is split, but one thread alone capped a
        // broadcast's deliveries at what one core reads (docs/PERFORMANCE.md, twenty-first session).
        int readers = Math.Clamp(Environment.ProcessorCount, 1, Math.Max(1, count));
        _epolls = [.. Enumerable.Range(0, readers).Select(static _ => LinuxEpoll.Create())];
        _readers = [.. _epolls.Select((epoll, i) => new Thread(() => Read(epoll)) { IsBackground = true, Name = $"subscriber fleet {i}" })];
    }

    /// <summary>
    /// Opens <paramref name="count"/> streams, subscriber i following account i modulo the accounts, and waits until
    /// every one is live. <paramref name="webSocketsOnly"/>: no SSE (the bare broadcast ceiling serves WebSockets only).
    /// </summary>
    public static async Task<SubscriberFleet> ConnectAsync(Uri gateway, string[] accounts, int count, Stopwatch clock, bool webSocketsOnly = false)
    {
        var fleet = new SubscriberFleet(count);
        string token = GatewayHost.MintToken(accounts);
        var server = new IPEndPoint(IPAddress.Parse(gateway.Host), gateway.Port);
        foreach (Thread reader in fleet._readers)
        {
            reader.Start();
        }

        try
        {
            await Task.Run(() =>
            {
                for (int i = 0; i < count; i++)
                {
                    // Alternate transports along the fleet and along each account's own subscribers, so that an account
                    // followed by several is followed over both, and the two can be compared (UnequalAccountsAsync).
                    string account = accounts[i % accounts.Length];
                    StreamSubscriber subscriber = webSocketsOnly || (i + i / accounts.Length) % 2 == 0
                        ? new WebSocketSubscriber(account, clock)
                        : new SseSubscriber(account, clock);
                    fleet._subscribers[i] = subscriber;
                    subscriber.Open(server, token);
                    LinuxEpoll.Add(fleet._epolls[i % fleet._epolls.Length], subscriber.Descriptor, (ulong)i);
                }
            });

            // Each subscriber starts live: wait until every one has its stream open.
            await Eventually.TrueAsync(() => fleet._subscribers.All(static s => s.Ready), $"{count} subscribers ready", 120);
            return fleet;
        }
        catch
        {
            await fleet.DisposeAsync();
            throw;
        }
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

    public ValueTask DisposeAsync()
    {
        _stopping = true;
        foreach (Thread reader in _readers)
        {
            reader.Join();
        }

        foreach (StreamSubscriber? subscriber in _subscribers)
        {
            subscriber?.Close();
        }

        foreach (int epoll in _epolls)
        {
            LinuxEpoll.Close(epoll);
        }

        return ValueTask.CompletedTask;
    }

    private void Read(int epoll)
    {
        var ready = new LinuxEpoll.Event[512];
        while (!_stopping)
        {
            int count = LinuxEpoll.Wait(epoll, ready, timeoutMilliseconds: 100);
            for (int i = 0; i < count; i++)
            {
                StreamSubscriber subscriber = _subscribers[(int)ready[i].Data];
                if (!subscriber.OnReadable())
                {
                    LinuxEpoll.Remove(epoll, subscriber.Descriptor);
                }
            }
        }
    }
}
