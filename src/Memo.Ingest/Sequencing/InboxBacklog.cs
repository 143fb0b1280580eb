using Memo.Ingest.Configuration;
using Memo.Ingest.Observability;
using Memo.Ingest.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Memo.Ingest.Sequencing;

/// <summary>
/// How far sequencing is behind acknowledgement, for every instance alike (the inbox is shared): an estimate of the
/// live records waiting and the age of the oldest, and apart from them the same for the history backfill, measured every <see cref="SequencerOptions.BacklogCheckMilliseconds"/>
/// with a few index probes. Past <see cref="SequencerOptions.SoftBacklogRecords"/> writers hold their batches back, so
/// that acknowledgements slow down to the pace of sequencing; past <see cref="SequencerOptions.MaxBacklogRecords"/>
/// the pipeline answers new webhooks 503 (backlogged), so that the lag between a 200 and visibility stays bounded
/// however long an overload lasts.
///
/// Each lane's estimate is the span of inbox ids from its oldest waiting record to the last id its lane handed out
/// (each lane has its own id sequence, migration 0010), so it counts that lane's records sequenced since the oldest one
/// as waiting too: it errs on the side of refusing early, and it also grows when one shard is stuck while others move
/// (a shard that changes owner, say). A backfill's records never count in the live estimate.
/// </summary>
internal sealed class InboxBacklog : BackgroundService
{
    // Live records and the history backfill apart (partial indexes inbox_live and inbox_history, and an id sequence
    // per lane): a backfill waiting behind live traffic must not hold or refuse live webhooks. History records below
    // 2^62 were numbered by the live sequence (a binary from before migration 0010, during a rolling update): they are
    // measured against it, as they were.
    private const string Query = """
        SELECT COALESCE((SELECT last_value FROM inbox_id_seq) - (SELECT min(id) FROM inbox WHERE flags & 3 <> 2) + 1, 0),
               COALESCE((SELECT extract(epoch FROM now() - received_at) FROM inbox WHERE flags & 3 <> 2 ORDER BY id LIMIT 1), 0)::float8,
               COALESCE((SELECT last_value FROM inbox_history_id_seq) - (SELECT min(id) FROM inbox WHERE flags & 3 = 2 AND id >= 4611686018427387904) + 1, 0)
                 + COALESCE((SELECT last_value FROM inbox_id_seq) - (SELECT min(id) FROM inbox WHERE flags & 3 = 2 AND id < 4611686018427387904) + 1, 0),
               COALESCE((SELECT extract(epoch FROM now() - received_at) FROM inbox WHERE flags & 3 = 2 ORDER BY id LIMIT 1), 0)::float8
        """;

    private readonly WriterDataSource _dataSource;
    private readonly DatabaseState _database;
    private readonly SequencerOptions _options;
    private long _records;
    private long _historyRecords;
    private double _oldestSeconds;
    private double _historyOldestSeconds;

    public InboxBacklog(WriterDataSource dataSource, DatabaseState database, IOptions<SequencerOptions> options, IngestMetrics metrics)
    {
        _dataSource = dataSource;
        _database = database;
        _options = options.Value;
        metrics.ObserveBacklog(() => Records, () => OldestSeconds, () => HistoryRecords, () => HistoryOldestSeconds);
    }

    /// <summary>Records acknowledged and not yet sequenced (an upper estimate).</summary>
    public long Records => Volatile.Read(ref _records);

    /// <summary>Age of the oldest record waiting, in seconds.</summary>
    public double OldestSeconds => Volatile.Read(ref _oldestSeconds);

    /// <summary>History backfill records acknowledged and not yet sequenced (an upper estimate).</summary>
    public long HistoryRecords => Volatile.Read(ref _historyRecords);

    /// <summary>Age of the oldest history backfill record waiting, in seconds.</summary>
    public double HistoryOldestSeconds => Volatile.Read(ref _historyOldestSeconds);

    /// <summary>True while new webhooks that carry history should be refused until the sequencers catch up.</summary>
    public bool IsHistoryOverLimit => HistoryRecords > _options.MaxHistoryBacklogRecords;

    /// <summary>True while new webhooks should be refused until the sequencers catch up.</summary>
    public bool IsOverLimit => Records > _options.MaxBacklogRecords;

    /// <summary>True while writers should hold their batches back (<see cref="SequencerOptions.SoftBacklogRecords"/>).</summary>
    public bool IsOverSoftLimit => Records > _options.SoftBacklogRecords;

    /// <summary>
    /// Waits while the backlog is over the soft limit, at most <see cref="SequencerOptions.MaxHoldMilliseconds"/>.
    /// Meanwhile the estimate is refreshed every few milliseconds (<see cref="ExecuteAsync"/>), so the hold ends soon
    /// after the sequencers have caught up.
    /// </summary>
    public async ValueTask HoldWhileBackloggedAsync()
    {
        if (!IsOverSoftLimit)
        {
            return;
        }

        long until = Environment.TickCount64 + _options.MaxHoldMilliseconds;
        while (IsOverSoftLimit && Environment.TickCount64 < until)
        {
            await Task.Delay(HeldInterval);
        }
    }

    // While writers hold batches back, the estimate is refreshed this often.
    private static readonly TimeSpan HeldInterval = TimeSpan.FromMilliseconds(10);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = TimeSpan.FromMilliseconds(Math.Max(10, _options.BacklogCheckMilliseconds));
        while (!stoppingToken.IsCancellationRequested)
        {
            if (_database.SchemaReady)
            {
                await MeasureAsync(stoppingToken);
            }

            try
            {
                await Task.Delay(IsOverSoftLimit ? HeldInterval : interval, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task MeasureAsync(CancellationToken cancellationToken)
    {
        try
        {
            await using NpgsqlConnection connection = await _dataSource.OpenConnectionAsync(cancellationToken);
            await using NpgsqlCommand command = new(Query, connection);
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
            if (await reader.ReadAsync(cancellationToken))
            {
                Volatile.Write(ref _records, reader.GetInt64(0));
                Volatile.Write(ref _oldestSeconds, reader.GetDouble(1));
                Volatile.Write(ref _historyRecords, reader.GetInt64(2));
                Volatile.Write(ref _historyOldestSeconds, reader.GetDouble(3));
            }
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or TimeoutException)
        {
            // The database is unreachable: the writers answer 503 on their own; keep the last estimate.
        }
    }
}
