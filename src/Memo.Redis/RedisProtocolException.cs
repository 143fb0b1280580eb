namespace Memo.Redis;

/// <summary>The server sent bytes that are not valid RESP; the connection cannot be trusted and is dropped.</summary>
public sealed class RedisProtocolException : RedisException
{
    public RedisProtocolException(string message)
        : base(message)
    {
    }
}
