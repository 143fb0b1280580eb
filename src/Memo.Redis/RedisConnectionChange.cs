namespace Memo.Redis;

/// <summary>
/// Raised when a connection comes up or goes down. <see cref="Error"/> says why it went down (or why an attempt to
/// connect failed, in which case <see cref="IsConnected"/> stays false).
/// </summary>
public readonly record struct RedisConnectionChange(bool IsConnected, Exception? Error);
