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
    private readonly ReconnectingSession _sessions;

    private RedisSubscriber(RedisConnectionOptions options, string[] channels, RedisMessageHandler handler)
    {
        _options = options;
        _channels = channels;
        _handler = handler;
        _sessions = new ReconnectingSession(options, OpenAndSubscribeAsync, change => StateChanged?.Invoke(change));
    }

    /// <summary>Raised once subscribed (again) and whenever the subscription is lost.</summary>
    public event Action<RedisConnectionChange>? StateChanged;

    public bool IsSubscribed => _sessions.Session is not null;

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

    public ValueTask DisposeAsync() => _sessions.DisposeAsync();

    private async Task<RedisSession> OpenAndSubscribeAsync(CancellationToken cancellationToken)
    {
        RedisSession session = await RedisSession.OpenAsync(_options, OnPush, cancellationToken).ConfigureAwait(false);
        try
        {
            using var subscribe = new RespCommandBuffer();
            subscribe.Command(1 + _channels.Length).Argument("SUBSCRIBE"u8);
            foreach (string channel in _channels)
            {
                subscribe.Argument(channel);
            }

            // One confirmation per channel.
            RedisReply[] confirmations = await session.Send(subscribe.Written.Span, _channels.Length)
                .WaitAsync(_options.CommandTimeout, cancellationToken).ConfigureAwait(false);
            foreach (RedisReply confirmation in confirmations)
            {
                if (confirmation.IsError)
                {
                    throw new RedisServerException(confirmation.AsString()!);
                }
            }

            return session;
        }
        catch
        {
            await session.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private void OnPush(RedisReply push)
    {
        ReadOnlySpan<RedisReply> items = push.Items;
        // ["message", channel, payload] or ["pmessage", pattern, channel, payload]
        bool pattern = items.Length == 4;
        _handler(items[pattern ? 2 : 1].Bytes.Span, items[pattern ? 3 : 2].Bytes);
    }

    /// <summary>For diagnostics: the channel names this subscriber listens to.</summary>
    public override string ToString() => $"{_options} [{string.Join(' ', _channels)}]";
}
