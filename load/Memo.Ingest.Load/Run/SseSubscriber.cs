using System.Diagnostics;
using Memo.Ingest.Load.OpenModel;

namespace Memo.Ingest.Load.Run;

/// <summary>
/// A subscriber over the gateway's Server-Sent Events (<c>/v1/stream/sse</c>): Kestrel frames the endless body in
/// HTTP/1.1 chunks, which are taken apart here, and every <c>data: </c> line is a message. A line that straddles two
/// chunks or two reads is the only thing copied. The body's last chunk ends the subscriber as failed.
/// </summary>
internal sealed class SseSubscriber(string account, Stopwatch clock) : StreamSubscriber(account, clock)
{
    private long _chunkLeft; // data bytes of the current chunk still to come
    private int _delimiterLeft; // bytes of the CRLF after a chunk's data still to skip
    private byte[] _line = new byte[1024];
    private int _lineLength;

    public override bool OverSse => true;

    protected override string Request(string authority, string token) =>
        $"GET /v1/stream/sse?accounts={Account} HTTP/1.1\r\nHost: {authority}\r\nAccept: text/event-stream\r\nAuthorization: Bearer {token}\r\n\r\n";

    protected override void CheckHead(ReadOnlySpan<byte> head)
    {
        if (!head.StartsWith("HTTP/1.1 200 "u8))
        {
            throw new IOException("The stream was refused: " + StatusLine(head));
        }

        if (head.IndexOf("\r\nTransfer-Encoding: chunked"u8) < 0)
        {
            throw new IOException("The stream's body is not chunked.");
        }
    }

    protected override int Consume(ReadOnlySpan<byte> buffered)
    {
        int used = 0;
        while (used < buffered.Length)
        {
            ReadOnlySpan<byte> rest = buffered[used..];
            if (_delimiterLeft > 0)
            {
                int skipped = Math.Min(_delimiterLeft, rest.Length);
                _delimiterLeft -= skipped;
                used += skipped;
            }
            else if (_chunkLeft > 0)
            {
                int data = (int)Math.Min(_chunkLeft, rest.Length);
                Split(rest[..data]);
                used += data;
                _chunkLeft -= data;
                _delimiterLeft = _chunkLeft == 0 ? 2 : 0;
            }
            else
            {
                int sizeEnd = rest.IndexOf("\r\n"u8);
                if (sizeEnd < 0)
                {
                    break; // the size line has not arrived whole
                }

                long size = RawHttpConnection.ChunkSize(rest[..sizeEnd]);

                if (size == 0)
                {
                    throw new IOException("The server ended the stream.");
                }

                used += sizeEnd + 2;
                _chunkLeft = size;
            }
        }

        return used;
    }

    private void Split(ReadOnlySpan<byte> data)
    {
        int newline;
        while ((newline = data.IndexOf((byte)'\n')) >= 0)
        {
            if (_lineLength == 0)
            {
                OnLine(data[..newline]);
            }
            else
            {
                Append(ref _line, ref _lineLength, data[..newline]);
                OnLine(_line.AsSpan(0, _lineLength));
                _lineLength = 0;
            }

            data = data[(newline + 1)..];
        }

        Append(ref _line, ref _lineLength, data);
    }

    private void OnLine(ReadOnlySpan<byte> line)
    {
        if (line.StartsWith("data: "u8))
        {
            OnMessage(line[6..].TrimEnd((byte)'\r'));
        }
    }
}
