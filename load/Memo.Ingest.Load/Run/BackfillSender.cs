using System.Diagnostics;
using System.Globalization;
using System.Net;
using Memo.Ingest.TestSupport;

namespace Memo.Ingest.Load.Run;

/// <summary>
/// A coexistence history backfill beside a load run: history chunks of <see cref="ChunkMessages"/> messages (50 threads
/// of 20) for one account, posted by two closed-loop senders until <c>total</c> messages are acknowledged; a 503 is
/// retried after its Retry-After, as Meta does. Measures how fast the backfill is acknowledged, while the run measures
/// what it does to live traffic. The chunks are built and signed before the run starts: Meta makes them on its own
/// machines, so building them is no part of what the run should charge to the two cores it shares with the gateway.
/// </summary>
internal sealed class BackfillSender
{
    public const string Account = "PNbackfill";

    public const int ChunkMessages = 1000;

    private readonly HttpClient _client;
    private readonly int _chunks;
    private readonly (byte[] Body, string Signature)[] _signed;
    private Stopwatch _clock = Stopwatch.StartNew();
    private Task _running = Task.CompletedTask;
    private int _nextChunk = -1;
    private long _acknowledged;
    private long _refused;
    private long _firstSentMicroseconds = -1;
    private long _lastAcknowledgedMicroseconds;

    private BackfillSender(Uri gateway, int total)
    {
        _client = new HttpClient { BaseAddress = gateway, Timeout = TimeSpan.FromSeconds(60) };
        _chunks = Math.Max(1, total / ChunkMessages);
        _signed = new (byte[], string)[_chunks];
        for (int chunk = 0; chunk < _chunks; chunk++)
        {
            byte[] body = System.Text.Encoding.UTF8.GetBytes(Body(chunk));
            _signed[chunk] = (body, WebhookSigner.Sign(body, GatewayHost.Secret));
        }
    }

    /// <summary>Builds and signs every chunk (before the run's measurement starts).</summary>
    public static BackfillSender Prepare(Uri gateway, int total) => new(gateway, total);

    /// <summary>Starts posting the chunks; times are taken on the run's <paramref name="clock"/>.</summary>
    public void Start(Stopwatch clock)
    {
        _clock = clock;
        _running = Task.WhenAll(Task.Run(SendAsync), Task.Run(SendAsync));
    }

    public long Messages => (long)_chunks * ChunkMessages;

    public async Task<string> CompleteAsync()
    {
        await _running;
        _client.Dispose();
        double seconds = (_lastAcknowledgedMicroseconds - _firstSentMicroseconds) / 1e6;
        return string.Create(CultureInfo.InvariantCulture,
            $"{Interlocked.Read(ref _acknowledged):N0} history messages acknowledged in {seconds:F1} s ({Interlocked.Read(ref _acknowledged) / Math.Max(seconds, 1e-3):N0} messages/s; {Interlocked.Read(ref _refused)} chunks answered 503 and sent again)");
    }

    /// <summary>When the first chunk was sent, on the run's clock.</summary>
    public long FirstSentMicroseconds => Interlocked.Read(ref _firstSentMicroseconds);

    private async Task SendAsync()
    {
        int chunk;
        while ((chunk = Interlocked.Increment(ref _nextChunk)) < _chunks)
        {
            (byte[] body, string signature) = _signed[chunk];
            Interlocked.CompareExchange(ref _firstSentMicroseconds, (long)_clock.Elapsed.TotalMicroseconds, -1);
            while (true)
            {
                using HttpResponseMessage response = await _client.SendAsync(WebhookRequest.Signed(body, signature));
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    Interlocked.Add(ref _acknowledged, ChunkMessages);
                    Interlocked.Exchange(ref _lastAcknowledgedMicroseconds, (long)_clock.Elapsed.TotalMicroseconds);
                    break;
                }

                Interlocked.Increment(ref _refused);
                await Task.Delay(response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1));
            }
        }
    }

    private string Body(int chunk)
    {
        var threads = new List<string>(50);
        for (int user = 0; user < 50; user++)
        {
            string number = string.Create(CultureInfo.InvariantCulture, $"4917{user:D6}");
            string[] messages = [.. Enumerable.Range(0, ChunkMessages / 50).Select(i =>
            {
                long ts = 1680000000 + (chunk * ChunkMessages) + (user * 20) + i;
                string wamid = string.Create(CultureInfo.InvariantCulture, $"wamid.backfill.{chunk}.{user}.{i}");
                return i % 2 == 0
                    ? CoexistencePayloads.HistoryText(wamid, number, ts, "an old question about the order", "READ")
                    : CoexistencePayloads.HistoryText(wamid, CoexistencePayloads.Business, ts, "an old answer from the shop", "DELIVERED", to: number);
            })];
            threads.Add(CoexistencePayloads.Thread(number, messages));
        }

        int progress = (int)((chunk + 1) * 100L / _chunks);
        return CoexistencePayloads.HistoryChunk(Account, 1, chunk, progress, threads);
    }
}
