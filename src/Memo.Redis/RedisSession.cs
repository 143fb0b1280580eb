using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using Memo.Redis.Protocol;

namespace Memo.Redis;

/// <summary>
/// One physical connection. Commands are copied into an outbound <see cref="Pipe"/> under a lock together with their
/// place in the reply queue, so the queue's order is the wire's order and any number of commands can be in flight;
/// a pump copies the pipe to the socket, and a read loop parses replies as they arrive and completes them in order.
/// When anything fails, the session is dead for good: every waiting command fails and the owner opens a new one.
/// </summary>
internal sealed class RedisSession : IAsyncDisposable
{
    private readonly Stream _stream;
    private readonly PipeReader _input;
    private readonly Pipe _output = new(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));
    private readonly ConcurrentQueue<PendingReplies> _pending = new();
    private readonly Lock _sendLock = new();
    private readonly Action<RedisReply>? _onPush;
    private readonly TaskCompletionSource<Exception> _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Exception? _failure;
    private Task _pump = Task.CompletedTask;
    private Task _reader = Task.CompletedTask;

    private RedisSession(Stream stream, Action<RedisReply>? onPush)
    {
        _stream = stream;
        _onPush = onPush;
        _input = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 16 * 1024, leaveOpen: true));
    }

    /// <summary>False from the moment the session fails (its owner may not have noticed yet).</summary>
    public bool IsAlive => Volatile.Read(ref _failure) is null;

    /// <summary>Completes with the reason when the session has died.</summary>
    public Task<Exception> Closed => _closed.Task;

    /// <summary>
    /// Connects, authenticates and selects the database. <paramref name="onPush"/> receives the replies that answer no
    /// command: pub/sub messages, on a subscriber's session.
    /// </summary>
    public static async Task<RedisSession> OpenAsync(RedisConnectionOptions options, Action<RedisReply>? onPush, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.ConnectTimeout);
        Stream stream;
        try
        {
            stream = await ConnectAsync(options, timeout.Token).ConfigureAwait(false);
        }
        catch (RedisConnectionException) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellationToken);
        }

        var session = new RedisSession(stream, onPush);
        session.Start();
        try
        {
            await session.HandshakeAsync(options).WaitAsync(timeout.Token).ConfigureAwait(false);
            return session;
        }
        catch (Exception e)
        {
            await session.DisposeAsync().ConfigureAwait(false);
            if (e is OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                throw new RedisConnectionException($"Redis at {options} did not complete the handshake within {options.ConnectTimeout.TotalMilliseconds} ms.", e);
            }

            throw;
        }
    }

    /// <summary>
    /// Queues the commands in <paramref name="commands"/> (already copied when this returns) and completes with their
    /// replies, in order. Error replies are returned as replies, not thrown.
    /// </summary>
    public Task<RedisReply[]> Send(ReadOnlySpan<byte> commands, int replies)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(replies, 1);
        var pending = new PendingReplies(replies);
        lock (_sendLock)
        {
            if (_failure is not null)
            {
                return Task.FromException<RedisReply[]>(new RedisConnectionException("The Redis connection is closed.", _failure));
            }

            _pending.Enqueue(pending);
            _output.Writer.Write(commands);
            // Never waits: the pipe has no pause threshold, and the pump drains it to the socket.
            ValueTask<FlushResult> flush = _output.Writer.FlushAsync();
            if (!flush.IsCompletedSuccessfully)
            {
                _ = flush.AsTask();
            }
        }

        return pending.Task;
    }

    /// <summary>Kills the session; waiting commands fail with <paramref name="reason"/> as the inner exception.</summary>
    public void Fail(Exception reason)
    {
        lock (_sendLock)
        {
            if (_failure is not null)
            {
                return;
            }

            _failure = reason;
            _output.Writer.Complete();
        }

        _input.CancelPendingRead();
        try
        {
            _stream.Dispose();
        }
        catch (IOException)
        {
            // Already broken; nothing more to release.
        }

        var error = reason as RedisException ?? new RedisConnectionException("The Redis connection was lost; the command's effect is unknown.", reason);
        while (_pending.TryDequeue(out PendingReplies? pending))
        {
            pending.TrySetException(error);
        }

        _closed.TrySetResult(reason);
    }

    public async ValueTask DisposeAsync()
    {
        Fail(new ObjectDisposedException(nameof(RedisSession)));
        await Task.WhenAll(_pump, _reader).ConfigureAwait(false);
        await _input.CompleteAsync().ConfigureAwait(false);
    }

    private void Start()
    {
        _pump = Task.Run(PumpAsync);
        _reader = Task.Run(ReadLoopAsync);
    }

    private async Task HandshakeAsync(RedisConnectionOptions options)
    {
        using var commands = new RespCommandBuffer();
        if (options.Password is not null)
        {
            if (options.User is not null)
            {
                commands.Command("AUTH", options.User, options.Password);
            }
            else
            {
                commands.Command("AUTH", options.Password);
            }
        }

        if (options.Database != 0)
        {
            commands.Command(2).Argument("SELECT"u8).Argument(options.Database);
        }

        if (options.ClientName is not null)
        {
            commands.Command("CLIENT", "SETNAME", options.ClientName);
        }

        // PING last, so that even with nothing else to say the server is known to be answering.
        commands.Command("PING");
        RedisReply[] replies = await Send(commands.Written.Span, commands.Commands).ConfigureAwait(false);
        foreach (RedisReply reply in replies)
        {
            if (reply.IsError)
            {
                // The server's words only (WRONGPASS, NOAUTH, ERR DB index...): never the password.
                throw new RedisConnectionException($"Redis at {options} refused the connection: {reply.AsString()}");
            }
        }
    }

    private async Task PumpAsync()
    {
        try
        {
            await _output.Reader.CopyToAsync(_stream).ConfigureAwait(false);
            await _output.Reader.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Fail(e);
            await _output.Reader.CompleteAsync(e).ConfigureAwait(false);
        }
    }

    private async Task ReadLoopAsync()
    {
        try
        {
            while (true)
            {
                ReadResult result = await _input.ReadAsync().ConfigureAwait(false);
                if (result.IsCanceled)
                {
                    return;
                }

                ReadOnlySequence<byte> buffer = result.Buffer;
                while (RespParser.TryRead(ref buffer, out RedisReply reply))
                {
                    Dispatch(reply);
                }

                _input.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted)
                {
                    Fail(new RedisConnectionException("Redis closed the connection."));
                    return;
                }
            }
        }
        catch (Exception e)
        {
            Fail(e);
        }
    }

    private void Dispatch(RedisReply reply)
    {
        if (_onPush is not null && IsPush(reply))
        {
            _onPush(reply);
            return;
        }

        if (!_pending.TryPeek(out PendingReplies? pending))
        {
            throw new RedisProtocolException("Redis sent a reply that no command was waiting for.");
        }

        if (pending.Add(reply))
        {
            _pending.TryDequeue(out _);
            pending.Complete();
        }
    }

    /// <summary>On a subscriber's connection, published messages arrive between replies as <c>message</c> arrays.</summary>
    private static bool IsPush(RedisReply reply) =>
        reply.Type == RespType.Array && reply.Items.Length >= 3 && reply.Items[0].Type == RespType.BulkString &&
        (reply.Items[0].Bytes.Span.SequenceEqual("message"u8) || reply.Items[0].Bytes.Span.SequenceEqual("pmessage"u8));

    private static async Task<Stream> ConnectAsync(RedisConnectionOptions options, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(options.Host, options.Port, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            socket.Dispose();
            throw new RedisConnectionException($"Could not connect to Redis at {options}: {(e is OperationCanceledException ? "timed out" : e.Message)}", e);
        }

        Stream stream = new NetworkStream(socket, ownsSocket: true);
        if (!options.Ssl)
        {
            return stream;
        }

        var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
        try
        {
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = options.SslHost ?? options.Host,
                RemoteCertificateValidationCallback = options.CertificateValidation,
            }, cancellationToken).ConfigureAwait(false);
            return ssl;
        }
        catch (Exception e)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw new RedisConnectionException($"TLS handshake with Redis at {options} failed: {e.Message}", e);
        }
    }

    /// <summary>The replies of one <see cref="Send"/>: completes when all of them have arrived.</summary>
    private sealed class PendingReplies : TaskCompletionSource<RedisReply[]>
    {
        private readonly RedisReply[] _replies;
        private int _received;

        public PendingReplies(int count)
            : base(TaskCreationOptions.RunContinuationsAsynchronously)
        {
            _replies = new RedisReply[count];
        }

        public bool Add(RedisReply reply)
        {
            _replies[_received++] = reply;
            return _received == _replies.Length;
        }

        public void Complete() => TrySetResult(_replies);
    }
}
