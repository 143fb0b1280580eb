namespace Memo.Redis;

/// <summary>The server answered a command with an error reply (for example <c>WRONGPASS</c> or <c>ERR</c>).</summary>
public sealed class RedisServerException : RedisException
{
    public RedisServerException(string message)
        : base(message)
    {
        int space = message.IndexOf(' ', StringComparison.Ordinal);
        ErrorCode = space > 0 ? message[..space] : message;
    }

    /// <summary>The error's first word, by Redis convention its kind: <c>ERR</c>, <c>WRONGTYPE</c>, <c>NOAUTH</c>...</summary>
    public string ErrorCode { get; }
}
