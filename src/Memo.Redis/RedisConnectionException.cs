namespace Memo.Redis;

/// <summary>
/// No connection to the server: connecting failed, the connection broke while the command was in flight (its
/// effect is then unknown), or the client is between reconnect attempts.
/// </summary>
public sealed class RedisConnectionException : RedisException
{
    public RedisConnectionException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}
