using System.Buffers.Text;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Memo.Ingest.Load.OpenModel;

/// <summary>
/// One keep-alive HTTP/1.1 connection that sends prepared request bytes and reads just enough of each answer: the
/// status code, whether it has <c>Retry-After</c>, and its body (by <c>Content-Length</c> or chunked), which it skips.
/// No headers object, no content stream, no string: what the gateway's answers need and nothing more, so that the
/// client costs the shared cores little. One request at a time; not thread-safe.
/// </summary>
internal sealed class RawHttpConnection : IDisposable
{
    private readonly Socket _socket;
    private readonly byte[] _buffer = new byte[16 * 1024];
    private int _start;
    private int _end;

    private RawHttpConnection(Socket socket) => _socket = socket;

    /// <summary>False once the server said it closes the connection (or it broke): open a new one.</summary>
    public bool Reusable { get; private set; } = true;

    public static async Task<RawHttpConnection> OpenAsync(EndPoint server, CancellationToken cancellationToken)
    {
        var socket = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(server, cancellationToken);
            return new RawHttpConnection(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Sends one request over <paramref name="connection"/>, opened first when it is null, and returns the connection to
    /// use next: null when it broke (the request's status is then 0, no answer) or the server closes it.
    /// </summary>
    public static async ValueTask<(RawHttpConnection? Next, short Status, bool RetryAfter)> SendAsync(RawHttpConnection? connection, EndPoint server,
        ReadOnlyMemory<byte> request, CancellationToken cancellationToken)
    {
        try
        {
            connection ??= await OpenAsync(server, cancellationToken);
            (short status, bool retryAfter) = await connection.ExchangeAsync(request, cancellationToken);
            if (!connection.Reusable)
            {
                connection.Dispose();
                connection = null;
            }

            return (connection, status, retryAfter);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
        {
            connection?.Dispose();
            return (null, 0, false);
        }
    }

    /// <summary>Sends one request and reads its answer. Throws <see cref="IOException"/> on a broken or malformed answer.</summary>
    public async ValueTask<(short Status, bool RetryAfter)> ExchangeAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken)
    {
        while (!request.IsEmpty)
        {
            int sent = await _socket.SendAsync(request, SocketFlags.None, cancellationToken);
            request = request[sent..];
        }

        int headerEnd;
        while ((headerEnd = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n\r\n"u8)) < 0)
        {
            await FillAsync(cancellationToken);
        }

        (short status, bool retryAfter, long contentLength, bool chunked) = ParseHead(_buffer.AsSpan(_start, headerEnd));
        _start += headerEnd + 4;
        if (chunked)
        {
            await SkipChunkedAsync(cancellationToken);
        }
        else
        {
            await SkipAsync(contentLength, cancellationToken);
        }

        return (status, retryAfter);
    }

    private (short Status, bool RetryAfter, long ContentLength, bool Chunked) ParseHead(ReadOnlySpan<byte> head)
    {
        // "HTTP/1.1 200 OK"
        if (head.Length < 12 || !head.StartsWith("HTTP/1."u8) || !Utf8Parser.TryParse(head[9..12], out short status, out int digits) || digits != 3)
        {
            throw new IOException("Malformed status line: " + Encoding.ASCII.GetString(head[..Math.Min(head.Length, 40)]));
        }

        bool retryAfter = false, chunked = false;
        long contentLength = 0;
        Reusable = !head.StartsWith("HTTP/1.0"u8);
        int lineEnd = head.IndexOf("\r\n"u8);
        ReadOnlySpan<byte> rest = lineEnd < 0 ? [] : head[(lineEnd + 2)..];
        while (!rest.IsEmpty)
        {
            lineEnd = rest.IndexOf("\r\n"u8);
            ReadOnlySpan<byte> line = lineEnd < 0 ? rest : rest[..lineEnd];
            rest = lineEnd < 0 ? [] : rest[(lineEnd + 2)..];
            int colon = line.IndexOf((byte)':');
            if (colon < 0)
            {
                continue;
            }

            ReadOnlySpan<byte> name = line[..colon];
            ReadOnlySpan<byte> value = line[(colon + 1)..].Trim((byte)' ');
            if (Ascii.EqualsIgnoreCase(name, "Content-Length"u8))
            {
                if (!Utf8Parser.TryParse(value, out contentLength, out _))
                {
                    throw new IOException("Malformed Content-Length.");
                }
            }
            else if (Ascii.EqualsIgnoreCase(name, "Transfer-Encoding"u8))
            {
                chunked = Ascii.EqualsIgnoreCase(value, "chunked"u8);
            }
            else if (Ascii.EqualsIgnoreCase(name, "Retry-After"u8))
            {
                retryAfter = true;
            }
            else if (Ascii.EqualsIgnoreCase(name, "Connection"u8) && Ascii.EqualsIgnoreCase(value, "close"u8))
            {
                Reusable = false;
            }
        }

        return (status, retryAfter, contentLength, chunked);
    }

    private async ValueTask SkipChunkedAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            int lineEnd;
            while ((lineEnd = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n"u8)) < 0)
            {
                await FillAsync(cancellationToken);
            }

            long size = ChunkSize(_buffer.AsSpan(_start, lineEnd));
            _start += lineEnd + 2;
            // The chunk and its CRLF; after the last (empty) chunk, the empty trailer's CRLF.
            await SkipAsync(size + 2, cancellationToken);
            if (size == 0)
            {
                return;
            }
        }
    }

    /// <summary>A chunk's size line, <c>1a3</c> or with an extension <c>1a3;name=value</c>, without its CRLF.</summary>
    public static long ChunkSize(ReadOnlySpan<byte> line)
    {
        int extension = line.IndexOf((byte)';');
        return Utf8Parser.TryParse(extension < 0 ? line : line[..extension], out long size, out _, 'X') && size >= 0
            ? size
            : throw new IOException("Malformed chunk size.");
    }

    private async ValueTask SkipAsync(long bytes, CancellationToken cancellationToken)
    {
        while (bytes > 0)
        {
            if (_start == _end)
            {
                await FillAsync(cancellationToken);
            }

            int skipped = (int)Math.Min(bytes, _end - _start);
            _start += skipped;
            bytes -= skipped;
        }
    }

    private async ValueTask FillAsync(CancellationToken cancellationToken)
    {
        if (_start == _end)
        {
            _start = _end = 0;
        }
        else if (_end == _buffer.Length)
        {
            if (_start == 0)
            {
                throw new IOException("An answer's head does not fit the buffer.");
            }

            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }

        int read = await _socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cancellationToken);
        if (read == 0)
        {
            Reusable = false;
            throw new IOException("The server closed the connection.");
        }

        _end += read;
    }

    public void Dispose() => _socket.Dispose();
}
