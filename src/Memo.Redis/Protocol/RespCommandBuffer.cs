using System.Buffers;
using System.Buffers.Text;
using System.Diagnostics;
using System.Text;

namespace Memo.Redis.Protocol;

/// <summary>
/// Encodes one or more commands as RESP arrays of bulk strings into a pooled, reusable buffer. Several commands in one
/// buffer are sent in one write and their replies come back together: that is pipelining. The caller owns the buffer
/// and may reuse it as soon as <see cref="RedisConnection.ExecuteAsync(RespCommandBuffer)"/> returns, because the
/// connection copies the bytes before it returns.
/// </summary>
public sealed class RespCommandBuffer : IDisposable
{
    private byte[] _buffer;
    private int _written;
    private int _argumentsLeft;
    private int _openArgumentEnd = -1;

    public RespCommandBuffer(int initialCapacity = 256)
    {
        _buffer = ArrayPool<byte>.Shared.Rent(initialCapacity);
    }

    /// <summary>Commands written since the last <see cref="Reset"/>: the number of replies to expect.</summary>
    public int Commands { get; private set; }

    public ReadOnlyMemory<byte> Written
    {
        get
        {
            EnsureComplete();
            return _buffer.AsMemory(0, _written);
        }
    }

    public void Reset()
    {
        _written = 0;
        _argumentsLeft = 0;
        _openArgumentEnd = -1;
        Commands = 0;
    }

    /// <summary>Starts a command of <paramref name="argumentCount"/> parts (the command name counts as one).</summary>
    public RespCommandBuffer Command(int argumentCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(argumentCount, 1);
        EnsureComplete();
        WriteHeader((byte)'*', argumentCount);
        _argumentsLeft = argumentCount;
        Commands++;
        return this;
    }

    /// <summary>Writes a whole command from text parts (convenient where allocation does not matter).</summary>
    public RespCommandBuffer Command(string name, params ReadOnlySpan<string> arguments)
    {
        Command(1 + arguments.Length).Argument(name);
        foreach (string argument in arguments)
        {
            Argument(argument);
        }

        return this;
    }

    public RespCommandBuffer Argument(ReadOnlySpan<byte> value)
    {
        BeginArgument(value.Length);
        Append(value);
        return EndArgument();
    }

    public RespCommandBuffer Argument(string value)
    {
        int length = Encoding.UTF8.GetByteCount(value);
        BeginArgument(length);
        Encoding.UTF8.GetBytes(value, Reserve(length));
        _written += length;
        return EndArgument();
    }

    public RespCommandBuffer Argument(long value)
    {
        Span<byte> digits = stackalloc byte[20];
        Utf8Formatter.TryFormat(value, digits, out int length);
        return Argument(digits[..length]);
    }

    /// <summary>
    /// Starts an argument of exactly <paramref name="length"/> bytes to be written in parts with <see cref="Append"/>
    /// (a key built from several pieces, say) and closed with <see cref="EndArgument"/>.
    /// </summary>
    public RespCommandBuffer BeginArgument(int length)
    {
        if (_argumentsLeft == 0 || _openArgumentEnd >= 0)
        {
            throw new InvalidOperationException("No argument is expected here: start a command first, and end the previous argument.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(length);
        WriteHeader((byte)'$', length);
        _openArgumentEnd = _written + length;
        return this;
    }

    public RespCommandBuffer Append(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(Reserve(bytes.Length));
        _written += bytes.Length;
        return this;
    }

    public RespCommandBuffer EndArgument()
    {
        if (_written != _openArgumentEnd)
        {
            throw new InvalidOperationException($"The argument was declared with a different length ({_openArgumentEnd - _written} bytes off).");
        }

        _openArgumentEnd = -1;
        _argumentsLeft--;
        Append("\r\n"u8);
        return this;
    }

    public void Dispose()
    {
        byte[] buffer = _buffer;
        _buffer = [];
        ArrayPool<byte>.Shared.Return(buffer);
    }

    private void EnsureComplete()
    {
        if (_argumentsLeft != 0 || _openArgumentEnd >= 0)
        {
            throw new InvalidOperationException($"The last command is missing {_argumentsLeft} argument(s).");
        }
    }

    private void WriteHeader(byte prefix, int value)
    {
        Span<byte> header = Reserve(1 + 11 + 2);
        header[0] = prefix;
        bool formatted = Utf8Formatter.TryFormat(value, header[1..], out int digits);
        Debug.Assert(formatted);
        header[1 + digits] = (byte)'\r';
        header[2 + digits] = (byte)'\n';
        _written += 3 + digits;
    }

    private Span<byte> Reserve(int length)
    {
        if (_buffer.Length - _written < length)
        {
            byte[] larger = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, _written + length));
            _buffer.AsSpan(0, _written).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = larger;
        }

        return _buffer.AsSpan(_written, length);
    }
}
