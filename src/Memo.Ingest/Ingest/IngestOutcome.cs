namespace Memo.Ingest.Ingest;

/// <summary>How the pipeline finished with one webhook; the endpoint maps each to its HTTP status.</summary>
internal enum IngestOutcome
{
    /// <summary>Every record is committed (or was already stored): answer 200.</summary>
    Committed,

    /// <summary>The queues stayed full past the enqueue timeout; nothing was written: answer 503 + Retry-After.</summary>
    Saturated,

    /// <summary>PostgreSQL failed or is unreachable; the transaction rolled back (or its commit is unknown and a
    /// redelivery is deduplicated by the unique keys): answer 503 + Retry-After so Meta retries.</summary>
    Unavailable,

    /// <summary>PostgreSQL refused this webhook's data on its own (a data exception): answer 400.</summary>
    RejectedByDatabase,

    /// <summary>The gateway is shutting down and no longer accepts work: answer 503.</summary>
    ShuttingDown,
}
