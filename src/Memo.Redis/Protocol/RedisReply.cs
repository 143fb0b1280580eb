using System.Text;

namespace Memo.Redis.Protocol;

/// <summary>
/// One parsed reply. A struct, so integer, status and null replies (the common answers to writes) allocate nothing;
/// bulk strings own a byte array and arrays an array of replies.
/// </summary>
public readonly struct RedisReply
{
    private static readonly RedisReply[] NoItems = [];

    private readonly object? _value;
    private readonly long _number;

    private RedisReply(RespType type, object? value, long number)
    {
        Type = type;
        _value = value;
        _number = number;
    }

    public RespType Type { get; }

    public bool IsNull => Type == RespType.Null;

    public bool IsError => Type == RespType.Error;

    /// <summary>The integer of an <see cref="RespType.Integer"/> reply (or 1/0 for a RESP3 boolean).</summary>
    public long Integer => Type is RespType.Integer or RespType.Boolean ? _number : throw WrongType(RespType.Integer);

    public double Double => Type == RespType.Double ? BitConverter.Int64BitsToDouble(_number) : throw WrongType(RespType.Double);

    /// <summary>The bytes of a bulk string, status line or error.</summary>
    public ReadOnlyMemory<byte> Bytes => _value as byte[] ?? (IsNull ? default : throw WrongType(RespType.BulkString));

    /// <summary>The elements of an array (empty for a null array).</summary>
    public ReadOnlySpan<RedisReply> Items => _value as RedisReply[] ?? (IsNull ? NoItems : throw WrongType(RespType.Array));

    /// <summary>Text of a string-like reply, or null for a null reply. Allocates: for tests, handshakes and errors.</summary>
    public string? AsString() => _value is byte[] bytes ? Encoding.UTF8.GetString(bytes) : IsNull ? null : _number.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public override string ToString() => Type switch
    {
        RespType.Array => $"[{string.Join(", ", ((RedisReply[])_value!).Select(static i => i.ToString()))}]",
        RespType.Null => "(nil)",
        RespType.Double => Double.ToString(System.Globalization.CultureInfo.InvariantCulture),
        _ => $"{Type}:{AsString()}",
    };

    internal static RedisReply Null => new(RespType.Null, null, 0);

    internal static RedisReply FromInteger(long value) => new(RespType.Integer, null, value);

    internal static RedisReply FromBoolean(bool value) => new(RespType.Boolean, null, value ? 1 : 0);

    internal static RedisReply FromDouble(double value) => new(RespType.Double, null, BitConverter.DoubleToInt64Bits(value));

    internal static RedisReply FromBytes(RespType type, byte[] bytes) => new(type, bytes, 0);

    internal static RedisReply FromItems(RespType type, RedisReply[] items) => new(type, items, 0);

    private InvalidOperationException WrongType(RespType expected) =>
        new($"Expected a {expected} reply but got {Type}{(IsError ? ": " + AsString() : "")}.");
}
