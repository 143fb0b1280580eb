namespace Memo.Ingest.Configuration;

/// <summary>
/// Configuration section <c>Memo:Sequencer</c>: the loops that turn acknowledged inbox records into the ordered,
/// deduplicated account streams (docs/DECISIONS.md, "Log first").
/// </summary>
public sealed class SequencerOptions
{
    public const string Section = "Memo:Sequencer";

    /// <summary>Sequencer sessions on this instance. The 64 account shards are spread over every session of every
    /// instance; each has its own PostgreSQL connection from the write pool. Busy shards are gathered on one session
    /// while it keeps up and spread only while it cannot (docs/DECISIONS.md 38), so a second session works when the
    /// sequencer is the limit (50-message webhooks sustained 17-30 % more on 2 cores) and idles otherwise
    /// (docs/PERFORMANCE.md, twenty-fifth and twenty-sixth sessions). 0: this instance sequences nothing
    /// (it still acknowledges and serves reads), for a deployment that keeps sequencing on other instances.</summary>
    public int Loops { get; set; } = 2;

    /// <summary>The most inbox records one sequencer statement takes. Larger rounds cost PostgreSQL less per message
    /// (42 µs at 1,000, 0.5 ms for a single record) but hold the records' visibility back for longer.</summary>
    public int MaxBatchRecords { get; set; } = 5000;

    /// <summary>A round that did not take a full batch is followed by the next no sooner than this after it started,
    /// so that a steady trickle of acknowledgements is sequenced in small groups rather than one statement each. Every
    /// event waits for part of it after its acknowledgement: at 5 ms, events came 4.3-4.9 ms after the ack at the median;
    /// at 1 ms, 0.8-1.6 ms, for 6-7 points more of a core in PostgreSQL at 2,000-5,000 webhooks/s and the same maximum
    /// rate (docs/PERFORMANCE.md, twenty-fourth session).</summary>
    public double MinRoundIntervalMilliseconds { get; set; } = 1;

    /// <summary>How often an idle loop looks at the inbox without being woken. Acknowledgements on this instance wake
    /// it at once, those of other instances through Redis; without Redis this bounds how long a record acknowledged by
    /// another instance waits.</summary>
    public int PollMilliseconds { get; set; } = 100;

    /// <summary>Records a session's live rounds take on average (smoothed over a few seconds) from which it counts as
    /// unable to keep up: only then does the leader spread busy shards over several sessions; otherwise it keeps them on
    /// one, because each session's rounds pay the statement's fixed cost (docs/DECISIONS.md 38). Rounds carry about ten
    /// records at the one-message webhooks of a saturated 2-core box, thousands when the sequencer is what limits.</summary>
    public double SplitAboveRecordsPerRound { get; set; } = 500;

    /// <summary>How often a loop re-counts the live sequencer sessions, reports its shards' event rates, and takes or gives
    /// up shards to match the leader's assignment (the leader, the session with the lowest member slot, rewrites it then).</summary>
    public int RebalanceMilliseconds { get; set; } = 1000;

    /// <summary>Records acknowledged but not yet sequenced, beyond which writers hold each batch back (up to
    /// <see cref="MaxHoldMilliseconds"/>) until the sequencers catch up. Acknowledgements slow down instead of the
    /// backlog growing: the CPU they would take goes to sequencing, and visibility stays within about a second of the
    /// acknowledgement (the sequencers take 20,000 records in under a second here).</summary>
    public long SoftBacklogRecords { get; set; } = 20_000;

    /// <summary>The longest a writer holds a batch back for the backlog; then it appends anyway (the hard limit below
    /// still applies).</summary>
    public int MaxHoldMilliseconds { get; set; } = 1000;

    /// <summary>Records acknowledged but not yet sequenced, beyond which new webhooks are answered 503 (backlogged)
    /// until the sequencers catch up. Bounds how far visibility can fall behind acknowledgement.</summary>
    public long MaxBacklogRecords { get; set; } = 200_000;

    /// <summary>
    /// History backfill records (coexistence numbers) a round takes at most, after the live records waiting: a
    /// backfill of 100,000 messages then never makes live traffic wait for more than one such slice of its work.
    /// Measured (docs/PERFORMANCE.md, issue 16): 50 instead of 100 lowered live webhook → event p99 during a backfill
    /// to 0.70-0.79× and made the backfill visible 1.06-1.32× later; 25 made it 2× later.
    /// </summary>
    public int HistoryRecordsPerRound { get; set; } = 50;

    /// <summary>
    /// History records acknowledged and not yet sequenced beyond which new webhooks that carry history are answered
    /// 503 (backlogged; Meta redelivers them). Live webhooks are never refused or held for the history backlog.
    /// </summary>
    public long MaxHistoryBacklogRecords { get; set; } = 200_000;

    /// <summary>How often each instance estimates the backlog (a few index probes).</summary>
    public int BacklogCheckMilliseconds { get; set; } = 200;
}
