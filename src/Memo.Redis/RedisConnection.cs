using Memo.Redis.Protocol;

namespace Memo.Redis;

/// <summary>
/// A multiplexed connection for commands: any number of callers share one socket with their commands in flight at
/// once (pipelining). It connects in the background and reconnects by itself with backoff after any failure; while
/// it is down, commands fail at once with <see cref="RedisConnectionException"/> rather than queueing, so a caller
/// that can do without Redis is never held up by it.
/// </summary>
public sealed class RedisConnection : IAsyncDisposable
{
    private readonly RedisConnectionOptions _options;
    private readonly ReconnectingSession _sessions;
    private volatile TaskCompletionSource _connected = NewSignal();

    private RedisConnection(RedisConnectionOptions options)
    {
        _options = options;
        _sessions = new ReconnectingSession(options,
            cancellationToken => RedisSession.OpenAsync(options, onPush: null, cancellationToken),
            change =>
            {
                if (change.IsConnected)
                {
                    _connected.TrySetResult();
                }

                StateChanged?.Invoke(change);
            },
            // Before the session is cleared: whoever sees no session also sees the fresh signal to wait on.
            goingDown: () => _connected = NewSignal());
    }

    /// <summary>Raised on the connection's own task whenever it connects, disconnects or fails to connect.</summary>
    public event Action<RedisConnectionChange>? StateChanged;

    public bool IsConnected => LiveSession is not null;

    public RedisConnectionOptions Options => _options;

    private RedisSession? LiveSession => _sessions.Session is { IsAlive: true } session ? session : null;

    /// <summary>Starts connecting in the background and returns at once.</summary>
    public static RedisConnection Create(RedisConnectionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new RedisConnection(options);
    }

    /// <summary>Connects and waits for the first connection (up to the connect timeout).</summary>
    public static async Task<RedisConnection> ConnectAsync(RedisConnectionOptions options, CancellationToken cancellationToken = default)
    {
        RedisConnection connection = Create(options);
        try
        {
            await connection.WaitUntilConnectedAsync(options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Waits until connected; throws <see cref="RedisConnectionException"/> with the last failure after <paramref name="timeout"/>.</summary>
    public async Task WaitUntilConnectedAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (LiveSession is null)
        {
            long left = deadline - Environment.TickCount64;
            if (left <= 0)
            {
                throw new RedisConnectionException($"Not connected to Redis at {_options} after {timeout.TotalMilliseconds} ms.", _sessions.LastError);
            }

            Task signal = _connected.Task;
            if (signal.IsCompleted)
            {
                // The session just died and the reconnect loop has not swapped the signal yet.
                await Task.Delay(5, cancellationToken).ConfigureAwait(false);
                continue;
            }

            try
            {
                await signal.WaitAsync(TimeSpan.FromMilliseconds(left), cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Checked at the top of the loop.
            }
        }
    }

    /// <summary>
    /// Sends every command in <paramref name="commands"/> in one write and returns their replies in order. Error
    /// replies are returned, not thrown. The buffer may be reused as soon as this method returns.
    /// </summary>
    /// <exception cref="RedisConnectionException">Not connected, or the connection broke before every reply came.</exception>
    /// <exception cref="RedisTimeoutException">No reply within the command timeout.</exception>
    public Task<RedisReply[]> ExecuteAsync(RespCommandBuffer commands)
    {
        ArgumentNullException.ThrowIfNull(commands);
        RedisSession? session = LiveSession;
        if (session is null)
        {
            return Task.FromException<RedisReply[]>(new RedisConnectionException($"Not connected to Redis at {_options}.", _sessions.LastError));
        }

        return WithTimeoutAsync(session, session.Send(commands.Written.Span, commands.Commands));
    }

    /// <summary>Runs one command given as text; an error reply is thrown as <see cref="RedisServerException"/>.</summary>
    public async Task<RedisReply> ExecuteAsync(string command, params string[] arguments)
    {
        using var buffer = new RespCommandBuffer();
        buffer.Command(command, arguments);
        RedisReply reply = (await ExecuteAsync(buffer).ConfigureAwait(false))[0];
        return reply.IsError ? throw new RedisServerException(reply.AsString()!) : reply;
    }

    public ValueTask DisposeAsync() => _sessions.DisposeAsync();

    private async Task<RedisReply[]> WithTimeoutAsync(RedisSession session, Task<RedisReply[]> replies)
    {
        try
        {
            return await replies.WaitAsync(_options.CommandTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // A reply that does not come means the server or the network is stuck. Every later reply on this socket
            // would queue behind it, so the connection is dropped and made afresh.
            var timeout = new RedisTimeoutException($"Redis at {_options} did not reply within {_options.CommandTimeout.TotalMilliseconds} ms.");
            session.Fail(timeout);
            throw timeout;
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
