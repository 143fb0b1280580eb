namespace Memo.Ingest.Ingest;

/// <summary>How the pipeline finished with one webhook; the endpoint maps each to its HTTP status.</summary>
internal enum IngestOutcome
{
    /// <summary>Every record is durably in the inbox (or was already stored), or PostgreSQL refused the webhook and it
    /// was kept whole in dead_letters: answer 200.</summary>
    Committed,

    /// <summary>The queue stayed full past the enqueue timeout, or was found full during a sustained overload
    /// (<see cref="QueueCongestion"/>); nothing was written: answer 503 + Retry-After.</summary>
    Saturated,

    /// <summary>PostgreSQL failed or is unreachable; the append rolled back (or its commit is unknown and a redelivery
    /// is dropped by the sequencer as a copy): answer 503 + Retry-After so Meta retries.</summary>
    Unavailable,

    /// <summary>PostgreSQL refused this webhook's data (a data exception). Internal to the writer, which then keeps the
    /// webhook in dead_letters; never the answer to a request.</summary>
    RejectedByDatabase,

    /// <summary>The sequencers are more than Memo:Sequencer:MaxBacklogRecords behind the acknowledgements; nothing was
    /// written: answer 503 + Retry-After.</summary>
    Backlogged,

    /// <summary>The gateway is shutting down and no longer accepts work: answer 503.</summary>
    ShuttingDown,
}
