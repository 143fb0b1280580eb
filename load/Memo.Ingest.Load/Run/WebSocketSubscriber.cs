using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;

namespace Memo.Ingest.Load.Run;

/// <summary>
/// A subscriber over the gateway's WebSocket (<c>/v1/stream/ws</c>, JSON text frames), decoded by hand (RFC 6455):
/// the server's frames are unmasked; a ping is answered with a pong, masked as a client must (the gateway drops a
/// client that stops answering); a close frame or a reserved opcode ends the subscriber as failed.
/// </summary>
internal sealed class WebSocketSubscriber(string account, Stopwatch clock) : StreamSubscriber(account, clock)
{
    private const int Continuation = 0x0, Text = 0x1, Binary = 0x2, CloseFrame = 0x8, Ping = 0x9, Pong = 0xA;

    // A message split over several frames (the gateway sends each in one; a client must still accept fragments).
    private byte[] _fragments = [];
    private int _fragmentsLength;

    public override bool OverSse => false;

    protected override string Request(string authority, string token) =>
        $"GET /v1/stream/ws?accounts={Account} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        $"Sec-WebSocket-Key: bWVtby1pbmdlc3QtbG9hZA==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n";

    protected override void CheckHead(ReadOnlySpan<byte> head)
    {
        if (!head.StartsWith("HTTP/1.1 101 "u8))
        {
            throw new IOException("The WebSocket upgrade was refused: " + StatusLine(head));
        }
    }

    protected override int Consume(ReadOnlySpan<byte> buffered)
    {
        int used = 0;
        while (TryFrame(buffered[used..], out bool final, out int opcode, out ReadOnlySpan<byte> payload, out int length))
        {
            used += length;
            switch (opcode)
            {
                case Text or Binary when final && _fragmentsLength == 0:
                    OnMessage(payload);
                    break;
                case Text or Binary or Continuation:
                    Append(ref _fragments, ref _fragmentsLength, payload);
                    if (final)
                    {
                        OnMessage(_fragments.AsSpan(0, _fragmentsLength));
                        _fragmentsLength = 0;
                    }

                    break;
                case Ping:
                    AnswerPing(payload);
                    break;
                case Pong:
                    break;
                case CloseFrame:
                    throw new IOException("The server closed the stream.");
                default:
                    throw new IOException($"A frame with the reserved opcode {opcode}.");
            }
        }

        return used;
    }

    private static bool TryFrame(ReadOnlySpan<byte> bytes, out bool final, out int opcode, out ReadOnlySpan<byte> payload, out int length)
    {
        final = false;
        opcode = 0;
        payload = default;
        length = 0;
        if (bytes.Length < 2)
        {
            return false;
        }

        if ((bytes[1] & 0x80) != 0)
        {
            throw new IOException("A masked frame from the server.");
        }

        int header = (bytes[1] & 0x7F) switch { 126 => 4, 127 => 10, _ => 2 };
        if (bytes.Length < header)
        {
            return false; // the rest of the frame's header has not arrived yet
        }

        ulong size = header switch
        {
            4 => BinaryPrimitives.ReadUInt16BigEndian(bytes[2..]),
            10 => BinaryPrimitives.ReadUInt64BigEndian(bytes[2..]),
            _ => (ulong)(bytes[1] & 0x7F),
        };
        if (size > int.MaxValue - 10)
        {
            throw new IOException($"A frame of {size} bytes.");
        }

        if ((ulong)(bytes.Length - header) < size)
        {
            return false; // the rest of the frame has not arrived yet
        }

        final = (bytes[0] & 0x80) != 0;
        opcode = bytes[0] & 0x0F;
        payload = bytes.Slice(header, (int)size);
        length = header + (int)size;
        return true;
    }

    /// <summary>A pong with the ping's payload, masked with a zero key (which leaves the payload as it is).</summary>
    private void AnswerPing(ReadOnlySpan<byte> payload)
    {
        if (payload.Length > 125)
        {
            throw new IOException("A ping with more than 125 bytes.");
        }

        Span<byte> pong = stackalloc byte[6 + payload.Length];
        pong[0] = 0x80 | Pong;
        pong[1] = (byte)(0x80 | payload.Length);
        pong[2..6].Clear();
        payload.CopyTo(pong[6..]);
        try
        {
            Socket.Send(pong);
        }
        catch (SocketException e)
        {
            throw new IOException("The pong could not be sent.", e);
        }
    }
}
