using System.Buffers.Text;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Memo.Ingest.Load.Run;

/// <summary>
/// One stream subscriber of the fleet, following one account live: a socket opened and upgraded here with blocking
/// calls, then read by one of the fleet's epoll threads (<see cref="OnReadable"/>), which hands the bytes to the transport's
/// decoder (<see cref="WebSocketSubscriber"/>, <see cref="SseSubscriber"/>). It counts events, checks that its seqs
/// follow each other, and measures webhook-sent → event-received latency from the text's <c>t=µs;</c> send time.
/// Its state is touched by one thread at a time: the opening thread, then only its epoll thread.
/// </summary>
internal abstract class StreamSubscriber(string account, Stopwatch clock)
{
    private readonly List<(long Received, int Latency)> _samples = [];
    private Socket? _socket;
    private int _descriptor = -1;
    private byte[] _buffer = new byte[8 * 1024];
    private int _start;
    private int _end;
    private long _lastSeq = -1;

    public string Account => account;

    public abstract bool OverSse { get; }

    public bool Ready { get; private set; }

    public long Events { get; private set; }

    public long OrderViolations { get; private set; }

    public long FirstEventMicroseconds { get; private set; }

    public long LastEventMicroseconds { get; private set; }

    public Exception? Failure { get; private set; }

    /// <summary>The socket's descriptor, for the fleet's epoll set (and its reads): the socket stays open until <see cref="Close"/>.</summary>
    public int Descriptor => _descriptor;

    protected Socket Socket => _socket!;

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

    /// <summary>Connects, sends the upgrade or stream request and reads the answer's head; what followed it is decoded at once.</summary>
    public void Open(IPEndPoint gateway, string token)
    {
        _socket = new Socket(gateway.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveTimeout = 30_000 };
        _socket.Connect(gateway);
        _descriptor = (int)_socket.SafeHandle.DangerousGetHandle();
        _socket.Send(Encoding.ASCII.GetBytes(Request($"{gateway.Address}:{gateway.Port}", token)));
        int headEnd;
        while ((headEnd = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n\r\n"u8)) < 0)
        {
            int read = _end < _buffer.Length ? _socket.Receive(_buffer, _end, _buffer.Length - _end, SocketFlags.None) : 0;
            if (read == 0)
            {
                throw new IOException("The stream's answer ended before its head did.");
            }

            _end += read;
        }

        CheckHead(_buffer.AsSpan(_start, headEnd));
        _start += headEnd + 4;
        Decode();
    }

    /// <summary>Reads what the socket has and decodes it; false once this subscriber is done (its stream failed or ended).</summary>
    public bool OnReadable()
    {
        try
        {
            if (_end == _buffer.Length)
            {
                MakeRoom();
            }

            int read = LinuxEpoll.Receive(Descriptor, _buffer.AsSpan(_end));
            if (read == 0)
            {
                throw new IOException("The server closed the stream.");
            }

            if (read > 0)
            {
                _end += read;
                Decode();
            }
        }
        catch (IOException e)
        {
            Failure = e;
        }

        return Failure is null;
    }

    public void Close() => _socket?.Dispose();

    /// <summary>The request that opens the stream of <see cref="Account"/>.</summary>
    protected abstract string Request(string authority, string token);

    /// <summary>Throws <see cref="IOException"/> unless the answer's head opens the stream.</summary>
    protected abstract void CheckHead(ReadOnlySpan<byte> head);

    /// <summary>Decodes whole frames or chunks at the front of <paramref name="buffered"/>; returns how many bytes it used.</summary>
    protected abstract int Consume(ReadOnlySpan<byte> buffered);

    /// <summary>The answer's first line, for an error message.</summary>
    protected static string StatusLine(ReadOnlySpan<byte> head) => Encoding.ASCII.GetString(head[..Math.Max(0, head.IndexOf("\r\n"u8))]);

    protected void OnMessage(ReadOnlySpan<byte> message)
    {
        // Events first: nearly every message is one, and the scan for the other type would cross the whole event.
        if (message.IndexOf("\"type\":\"event\""u8) < 0)
        {
            Ready |= message.IndexOf("\"type\":\"ready\""u8) >= 0;
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
            lock (_samples)
            {
                _samples.Add((received, (int)Math.Min(received - sent, int.MaxValue)));
            }
        }
    }

    /// <summary>Adds <paramref name="part"/> to a message or line gathered across frames, chunks or reads.</summary>
    protected static void Append(ref byte[] gathered, ref int length, ReadOnlySpan<byte> part)
    {
        if (length + part.Length > gathered.Length)
        {
            Array.Resize(ref gathered, Math.Max(gathered.Length * 2, length + part.Length));
        }

        part.CopyTo(gathered.AsSpan(length));
        length += part.Length;
    }

    private void Decode()
    {
        _start += Consume(_buffer.AsSpan(_start, _end - _start));
        if (_start == _end)
        {
            _start = _end = 0;
        }
    }

    /// <summary>Moves the undecoded tail to the front, or doubles the buffer when the tail fills it (a large frame).</summary>
    private void MakeRoom()
    {
        if (_start == 0)
        {
            Array.Resize(ref _buffer, _buffer.Length * 2);
            return;
        }

        Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
        _end -= _start;
        _start = 0;
    }

    private static bool TryReadNumber(ReadOnlySpan<byte> message, ReadOnlySpan<byte> prefix, out long value)
    {
        int at = message.IndexOf(prefix);
        value = 0;
        return at >= 0 && Utf8Parser.TryParse(message[(at + prefix.Length)..], out value, out _);
    }
}
