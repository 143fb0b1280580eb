namespace Memo.Ingest.Configuration;

/// <summary>Configuration section <c>Memo:Ingest</c>: body limit, queueing and group commit.</summary>
public sealed class IngestOptions
{
    public const string Section = "Memo:Ingest";

    /// <summary>Largest accepted POST body. Meta batches up to 1,000 updates and about 3 MB per POST; 4 MiB admits
    /// that with room for JSON escaping.</summary>
    public int MaxBodyBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>How many parsed webhooks may wait for a writer. Past this, requests wait up to
    /// <see cref="EnqueueTimeoutMilliseconds"/> and then get 503 with Retry-After.</summary>
    public int ChannelCapacity { get; set; } = 1024;

    /// <summary>How long a request may wait for room in a full queue before it is answered 503. Waiting rides out a
    /// burst instead of refusing it (a refusal delays those messages by Meta's retry backoff); shorter values refuse
    /// sooner at a lower tail latency (both measured in docs/RELIABILITY.md). It also tells a burst from a sustained
    /// overload: once the queue has been full for longer than this (no quarter of it without a request finding it
    /// full), a request that finds it full is answered 503 at once (<see cref="Ingest.QueueCongestion"/>).</summary>
    public int EnqueueTimeoutMilliseconds { get; set; } = 2000;

    /// <summary>Writer tasks, each with its own PostgreSQL connection and transaction.</summary>
    public int Writers { get; set; } = 2;

    /// <summary>Writers of their own for webhooks that carry a history backfill (coexistence numbers), fed by a queue
    /// of its own, so that a live webhook never waits behind a chunk of a thousand history messages. 0: history shares
    /// the live writers.</summary>
    public int HistoryWriters { get; set; } = 1;

    /// <summary>A writer stops adding webhooks to a batch once it holds this many records.</summary>
    public int MaxBatchRecords { get; set; } = 5000;

    /// <summary>After taking the first webhook, how long a writer waits for more before committing (0: take only
    /// what is already queued). Larger values mean fewer, bigger transactions at a small cost in ack latency.</summary>
    public double BatchLingerMilliseconds { get; set; }

    /// <summary>How long a contact profile this instance appended keeps identical ones (same account, wa_id and name)
    /// from being appended again (<see cref="Ingest.RecentContactProfiles"/>); 0 appends every profile. Meta repeats the
    /// sender's profile with every message, so this halves the inbox records of ordinary traffic. A name changed back
    /// through another instance (A here, B there, A here again) may stay behind for at most this long.</summary>
    public int ContactProfileMemorySeconds { get; set; } = 60;

    /// <summary>The Retry-After value sent with 503.</summary>
    public int RetryAfterSeconds { get; set; } = 2;

    /// <summary>On a transient PostgreSQL failure, a writer waits this long before trying to connect again;
    /// meanwhile batches are answered 503 at once instead of piling up behind a dead connection.</summary>
    public int ReconnectBackoffMilliseconds { get; set; } = 500;

    /// <summary>On SIGTERM, how long the host waits for queued webhooks to commit and streams to close. A container
    /// orchestrator's grace period must be longer than this (plus any pre-stop delay).</summary>
    public int ShutdownTimeoutSeconds { get; set; } = 30;
}
