using System.Collections.Concurrent;

namespace Memo.Ingest.Streams;

/// <summary>
/// One timer for every stream session of the instance: at each tick it asks each session whether its token has
/// expired, whether its WebSocket client left a ping unanswered for too long, and whether its client has gone a
/// heartbeat interval without hearing anything (<see cref="StreamSession.Tick"/>).
///
/// Before, each session had a heartbeat <see cref="Timer"/> and a token-expiry timer of its own, and each WebSocket the
/// runtime's keep-alive timer, which fires every quarter of the interval: with 5,000 idle subscribers the timer queue
/// held 12,500 timers and each firing woke a thread-pool worker that then spun waiting for more work (docs/DECISIONS.md
/// 36). A tick visits every session in one pass and wakes only those that have something to do; a heartbeat, an expiry
/// or a drop is late by at most one tick.
/// </summary>
internal sealed class SessionClock : IAsyncDisposable
{
    private readonly ConcurrentDictionary<StreamSession, byte> _sessions = new(ReferenceEqualityComparer.Instance);
    private readonly CancellationTokenSource _stopping = new();
    private readonly TimeSpan _period;
    private Task _running = Task.CompletedTask;

    /// <param name="heartbeat">The heartbeat interval: ticks come four times per interval, at most once a second.</param>
    public SessionClock(TimeSpan heartbeat)
    {
        _period = TimeSpan.FromMilliseconds(Math.Clamp(heartbeat.TotalMilliseconds / 4, 50, 1000));
    }

    public int Sessions => _sessions.Count;

    public void Start() => _running = Task.Run(RunAsync, CancellationToken.None);

    public void Add(StreamSession session) => _sessions.TryAdd(session, 0);

    public void Remove(StreamSession session) => _sessions.TryRemove(session, out _);

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        await _running;
    }

    private async Task RunAsync()
    {
        using var timer = new PeriodicTimer(_period);
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token))
            {
                long now = Environment.TickCount64;
                // The dictionary's own enumerator: no snapshot of the keys per tick; a session added or removed during
                // the pass is visited or not, and is seen at the next tick either way.
                foreach (KeyValuePair<StreamSession, byte> entry in _sessions)
                {
                    entry.Key.Tick(now);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
