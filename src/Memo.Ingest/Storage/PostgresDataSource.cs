using Microsoft.Extensions.Configuration;
using Npgsql;

namespace Memo.Ingest.Storage;

internal static class PostgresDataSource
{
    /// <summary>
    /// The read pool (sync pages, stream replays, health, migrations), from <c>ConnectionStrings:Postgres</c> with
    /// <see cref="NpgsqlSlimDataSourceBuilder"/>, which leaves out Npgsql's reflection-based type mappings and so stays
    /// trimmable for Native AOT.
    /// </summary>
    public static NpgsqlDataSource Create(IConfiguration configuration) => CreateBuilder(configuration, "memo-ingest").Build();

    /// <summary>
    /// The write path's own pool (ack writers, sequencers, the backlog probe), so that read traffic can never
    /// take the connections that acknowledgements wait for. Its sessions pin what the write path's correctness and
    /// speed rest on, whatever the database or role defaults say:
    /// <list type="bullet">
    /// <item>READ COMMITTED, the isolation level the seq argument is made for (docs/DECISIONS.md).</item>
    /// <item>Generic plans for prepared statements: the sequencer's statement is written so that every plan is safe
    /// (index probes through LATERAL, sorts, a TID scan), and re-planning it per call costs more than running it on
    /// small batches (1.5 ms against 0.5 ms, measured in docs/PERFORMANCE.md). It also removes the switch between
    /// custom and generic plans that made throughput bimodal.</item>
    /// <item>No sequential scans where an index exists. A generic plan is made once per session, often while the
    /// tables are still small, when scanning a table costs less than probing its index; kept as the table grows, that
    /// plan would scan the whole messages table for every record. The write path's statements only ever need index
    /// probes, so the planner is told not to consider scans (they stay possible where no index exists).</item>
    /// <item>No nested loops where another join exists. A generic plan cannot know how many rows the sequencer's CTEs
    /// hold, and joining the events of a round to the rows it wrote (the live path's items) by nested loops over CTE
    /// scans is quadratic in the round; hash joins are linear. The LATERAL index probes stay nested loops: they have
    /// no other form (WritePathTests walks the plan).</item>
    /// <item>No JIT compilation. It never pays for statements of milliseconds, and a disabled scan's cost (a sequence is
    /// always read by a scan) made PostgreSQL compile the backlog probe on every call: 140 ms of CPU each, measured.</item>
    /// <item>Sorts of a full round in memory (work_mem 32 MB; the default 4 MB). The sequencer's statement sorts a
    /// round's records with their raw payloads for its window functions; a round of 5,000 records is several
    /// megabytes, which the default spilled to temporary files on every large round (docs/PERFORMANCE.md,
    /// twenty-seventh session). Each sort still spills beyond 32 MB, so a round of huge payloads stays bounded.</item>
    /// <item>TCP keepalives, so that a sequencer whose host vanished without closing its socket gives up its shards
    /// within about 30 s instead of the kernel's two hours.</item>
    /// </list>
    /// </summary>
    public const string WriterSessionOptions =
        @"-c default_transaction_isolation=read\ committed -c plan_cache_mode=force_generic_plan -c enable_seqscan=off -c enable_nestloop=off -c jit=off -c work_mem=32MB " +
        "-c tcp_keepalives_idle=15 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3";

    public static WriterDataSource CreateWriter(IConfiguration configuration, int connections)
    {
        NpgsqlSlimDataSourceBuilder builder = CreateBuilder(configuration, "memo-ingest-writer");
        NpgsqlConnectionStringBuilder settings = builder.ConnectionStringBuilder;
        settings.MaxPoolSize = connections;
        settings.MinPoolSize = 0;
        settings.Options = string.IsNullOrWhiteSpace(settings.Options) ? WriterSessionOptions : settings.Options + " " + WriterSessionOptions;
        return new WriterDataSource(builder.Build());
    }

    private static NpgsqlSlimDataSourceBuilder CreateBuilder(IConfiguration configuration, string applicationName)
    {
        string? connectionString = configuration.GetConnectionString("Postgres");
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new InvalidOperationException(
                "ConnectionStrings:Postgres is not set. Set ConnectionStrings__Postgres, or run scripts/run.sh for a local database.");
        }

        var builder = new NpgsqlSlimDataSourceBuilder(connectionString);
        builder.ConnectionStringBuilder.ApplicationName ??= applicationName;
        // Arrays carry the sequencer's shards and the accounts the stream hub's sweep asks about.
        builder.EnableArrays();
        return builder;
    }
}
