using Memo.Redis.Protocol;

namespace Memo.Redis;

/// <summary>Receives one published message: the channel it came on and its payload (valid during the call only).</summary>
public delegate void RedisMessageHandler(ReadOnlySpan<byte> channel, ReadOnlyMemory<byte> payload);

/// <summary>
/// A pub/sub connection subscribed to a fixed set of channels. It reconnects with backoff and subscribes again by
/// itself. Pub/sub is at-most-once: messages published while it was down are gone, so a consumer that must not
/// miss anything treats <see cref="RedisConnectionChange.IsConnected"/> in <see cref="StateChanged"/> as "catch up
/// from the source of truth now".
/// </summary>
public sealed class RedisSubscriber : IAsyncDisposable
{
    private readonly RedisConnectionOptions _options;
    private readonly string[] _channels;
    private readonly RedisMessageHandler _handler;
    private readonly CancellationTokenSource _shutdown = new();
    private readonly Task _maintaining;
    private int _disposed;
    private volatile RedisSession? _session;

    private RedisSubscriber(RedisConnectionOptions options, string[] channels, RedisMessageHandler handler)
    {
        _options = options;
        _channels = channels;
        _handler = handler;
        _maintaining = Task.Run(MaintainAsync);
    }

    /// <summary>Raised once subscribed (again) and whenever the subscription is lost.</summary>
    public event Action<RedisConnectionChange>? StateChanged;

    public bool IsSubscribed => _session is not null;

    /// <summary>
    /// Starts subscribing in the background. <paramref name="handler"/> runs on the connection's read loop, one
    /// message at a time: it must be quick and must not block (hand the payload to a queue).
    /// </summary>
    public static RedisSubscriber Create(RedisConnectionOptions options, IReadOnlyCollection<string> channels, RedisMessageHandler handler)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(handler);
        if (channels.Count == 0)
        {
            throw new ArgumentException("At least one channel is needed.", nameof(channels));
        }

        return new RedisSubscriber(options, [.. channels], handler);
    }

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
            RedisSession? session = null;
            try
            {
                session = await RedisSession.OpenAsync(_options, OnPush, shutdown).ConfigureAwait(false);
                using var subscribe = new RespCommandBuffer();
                subscribe.Command(1 + _channels.Length).Argument("SUBSCRIBE"u8);
                foreach (string channel in _channels)
                {
                    subscribe.Argument(channel);
                }

                // One confirmation per channel.
                RedisReply[] confirmations = await session.Send(subscribe.Written.Span, _channels.Length)
                    .WaitAsync(_options.CommandTimeout, shutdown).ConfigureAwait(false);
                foreach (RedisReply confirmation in confirmations)
                {
                    if (confirmation.IsError)
                    {
                        throw new RedisServerException(confirmation.AsString()!);
                    }
                }
            }
            catch (OperationCanceledException) when (shutdown.IsCancellationRequested)
            {
                await DisposeQuietlyAsync(session).ConfigureAwait(false);
                return;
            }
            catch (Exception e)
            {
                await DisposeQuietlyAsync(session).ConfigureAwait(false);
                Raise(new RedisConnectionChange(false, e));
                if (!await RedisConnection.DelayAsync(backoff.Next(), shutdown).ConfigureAwait(false))
                {
                    return;
                }

                continue;
            }

            long connectedAt = Environment.TickCount64;
            _session = session;
            Raise(new RedisConnectionChange(true, null));
            Exception reason = await session.Closed.ConfigureAwait(false);
            _session = null;
            await session.DisposeAsync().ConfigureAwait(false);
            if (shutdown.IsCancellationRequested)
            {
                return;
            }

            Raise(new RedisConnectionChange(false, reason));
            if (!await RedisConnection.PauseAfterAsync(connectedAt, backoff, shutdown).ConfigureAwait(false))
            {
                return;
            }
        }
    }

    private void OnPush(RedisReply push)
    {
        ReadOnlySpan<RedisReply> items = push.Items;
        // ["message", channel, payload] or ["pmessage", pattern, channel, payload]
        bool pattern = items.Length == 4;
        _handler(items[pattern ? 2 : 1].Bytes.Span, items[pattern ? 3 : 2].Bytes);
    }

    private void Raise(RedisConnectionChange change)
    {
        try
        {
            StateChanged?.Invoke(change);
        }
        catch (Exception)
        {
            // A faulty observer must not stop the reconnect loop.
        }
    }

    private static async ValueTask DisposeQuietlyAsync(RedisSession? session)
    {
        if (session is not null)
        {
            await session.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>For diagnostics: the channel names this subscriber listens to.</summary>
    public override string ToString() => $"{_options} [{string.Join(' ', _channels)}]";
}
