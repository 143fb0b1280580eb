namespace Memo.Ingest.Outbox;

/// <summary>What became of one call to the Cloud API's messages endpoint, as the sender acts on it.</summary>
internal enum SendOutcomeKind
{
    /// <summary>Meta took the message and returned its wamid.</summary>
    Accepted,

    /// <summary>Meta refused it for a reason that retrying does not change (outside the 24-hour window 131047, invalid
    /// recipient, template problems, expired token 190, any other 4xx): failed at once, Meta's error kept.</summary>
    Failed,

    /// <summary>A 5xx, a transient Graph error, or a connection that failed before the request was sent: retried with
    /// jittered exponential backoff up to the horizon.</summary>
    Retry,

    /// <summary>The number's throughput was exceeded (130429, 131057, HTTP 429): the whole account backs off.</summary>
    ThrottledAccount,

    /// <summary>Too many messages to this user (131056): the pair backs off, 4^n seconds.</summary>
    ThrottledPair,

    /// <summary>No answer in time, or the connection broke after the request went out: Meta may have the message.</summary>
    Timeout,
}

/// <summary>The outcome of one send: <see cref="SendOutcomeKind"/>, the wamid, or Meta's error code and object.</summary>
internal readonly record struct SendOutcome(SendOutcomeKind Kind, string? Wamid = null, int? ErrorCode = null, byte[]? Error = null,
    byte[]? Response = null)
{
    public static string Name(SendOutcomeKind kind) => kind switch
    {
        SendOutcomeKind.Accepted => "accepted",
        SendOutcomeKind.Failed => "failed",
        SendOutcomeKind.Retry => "retry",
        SendOutcomeKind.ThrottledAccount => "throttled_account",
        SendOutcomeKind.ThrottledPair => "throttled_pair",
        _ => "timeout",
    };
}
