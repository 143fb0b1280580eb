namespace Memo.Redis;

/// <summary>
/// Keeps one <see cref="RedisSession"/> open in the background: opens it, waits until it dies, opens another, with
/// backoff between failed attempts. The command connection and the subscriber differ only in how a session is
/// opened (the subscriber also subscribes) and in what they do when it comes up or goes down.
/// </summary>
internal sealed class ReconnectingSession : IAsyncDisposable
{
    private readonly RedisConnectionOptions _options;
    private readonly Func<CancellationToken, Task<RedisSession>> _open;
    private readonly Action<RedisConnectionChange> _changed;
    private readonly Action? _goingDown;
    private readonly CancellationTokenSource _shutdown = new();
    private readonly Task _maintaining;
    private volatile RedisSession? _session;
    private volatile Exception? _lastError;
    private int _disposed;

    /// <param name="open">Opens a ready session; a failure counts as a failed attempt (the method cleans up after itself).</param>
    /// <param name="changed">Told of every connect, disconnect and failed attempt; its exceptions are ignored.</param>
    /// <param name="goingDown">Runs when a working session dies, before <see cref="Session"/> is cleared.</param>
    public ReconnectingSession(RedisConnectionOptions options, Func<CancellationToken, Task<RedisSession>> open,
        Action<RedisConnectionChange> changed, Action? goingDown = null)
    {
        _options = options;
        _open = open;
        _changed = changed;
        _goingDown = goingDown;
        _maintaining = Task.Run(MaintainAsync);
    }

    /// <summary>The open session, or null between sessions.</summary>
    public RedisSession? Session => _session;

    /// <summary>Why the last attempt failed or the last session died.</summary>
    public Exception? LastError => _lastError;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _shutdown.CancelAsync().ConfigureAwait(false);
        RedisSession? session = _session;
        if (session is not null)
        {
            await session.DisposeAsync().ConfigureAwait(false);
        }

        await _maintaining.ConfigureAwait(false);
        _shutdown.Dispose();
    }

    private async Task MaintainAsync()
    {
        var backoff = new ReconnectBackoff(_options.MinReconnectDelay, _options.MaxReconnectDelay);
        CancellationToken shutdown = _shutdown.Token;
        while (!shutdown.IsCancellationRequested)
        {
            RedisSession session;
            try
            {
                session = await _open(shutdown).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (shutdown.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                _lastError = e;
                Notify(new RedisConnectionChange(false, e));
                if (!await DelayAsync(backoff.Next(), shutdown).ConfigureAwait(false))
                {
                    return;
                }

                continue;
            }

            long connectedAt = Environment.TickCount64;
            _session = session;
            Notify(new RedisConnectionChange(true, null));

            Exception reason = await session.Closed.ConfigureAwait(false);
            _goingDown?.Invoke();
            _session = null;
            await session.DisposeAsync().ConfigureAwait(false);
            if (shutdown.IsCancellationRequested)
            {
                return;
            }

            _lastError = reason;
            Notify(new RedisConnectionChange(false, reason));
            if (!await PauseAfterAsync(connectedAt, backoff, shutdown).ConfigureAwait(false))
            {
                return;
            }
        }
    }

    private void Notify(RedisConnectionChange change)
    {
        try
        {
            _changed(change);
        }
        catch (Exception)
        {
            // A faulty observer must not stop the reconnect loop.
        }
    }

    /// <summary>
    /// After a connection that worked for a while, the first retry is immediate (a restarted server is usually back at
    /// once) and the backoff starts over; a connection that died young (a server that accepts and then drops
    /// clients) counts as a failed attempt, so the client never spins.
    /// </summary>
    private static async Task<bool> PauseAfterAsync(long connectedAt, ReconnectBackoff backoff, CancellationToken shutdown)
    {
        if (Environment.TickCount64 - connectedAt >= 1000)
        {
            backoff.Reset();
            return true;
        }

        return await DelayAsync(backoff.Next(), shutdown).ConfigureAwait(false);
    }

    private static async Task<bool> DelayAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
