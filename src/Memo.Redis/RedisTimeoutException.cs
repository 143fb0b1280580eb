namespace Memo.Redis;

/// <summary>A command got no reply within the command timeout; the connection is dropped and re-established.</summary>
public sealed class RedisTimeoutException : RedisException
{
    public RedisTimeoutException(string message)
        : base(message)
    {
    }
}
