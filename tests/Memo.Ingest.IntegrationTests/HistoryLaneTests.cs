using System.Net;
using System.Text;
using Memo.Ingest.Sequencing;
using Memo.Ingest.TestSupport;
using Npgsql;
using Xunit;
using P = Memo.Ingest.TestSupport.CoexistencePayloads;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// The history lane runs its slices on a connection that holds no shard lock: what keeps it from writing a shard that
/// its session lost to another instance. Its statement takes nothing from a shard the live session does not hold, and
/// a session taking a shard over waits for a slice of the previous holder that may still be running.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class HistoryLaneTests(PostgresFixture postgres)
{
    private const string Account = "PNlaneguard";

    // The advisory lock key spaces of SequencerSql: shard locks ("MEM1") and slice locks ("MEM3").
    private const int ShardLockSpace = 1296387377;
    private const int SliceLockSpace = 1296387379;

    [Fact]
    public async Task AHistorySlice_TakesNothing_FromAShardItsLiveSessionDoesNotHold()
    {
        string database = await postgres.Server.CreateDatabaseAsync("history_lane_guard");
        await AcknowledgeBackfillAsync(database);
        await using var session = new NpgsqlConnection(database);
        await session.OpenAsync();
        int shard = (int)await Database.CountAsync(database, $"SELECT hashtext('{Account}') & 63");

        // As if this connection's pid were a live session that no longer holds the shard.
        Assert.Equal(0, await SliceAsync(session, shard));
        Assert.Equal(21, await Database.CountAsync(database, "SELECT count(*) FROM inbox"));

        // Holding the shard lock, the same statement takes the slice.
        await using (var take = new NpgsqlCommand($"SELECT pg_advisory_lock({ShardLockSpace}, {shard})", session))
        {
            await take.ExecuteNonQueryAsync();
        }

        Assert.Equal(20, await SliceAsync(session, shard));
        Assert.Equal(20, await Database.CountAsync(database, $"SELECT count(*) FROM messages WHERE account = '{Account}' AND origin = 'history'"));
    }

    [Fact]
    public async Task ASessionTakingAShardOver_WaitsForTheSliceOfItsPreviousHolder()
    {
        string database = await postgres.Server.CreateDatabaseAsync("history_lane_barrier");
        // A slice of a previous holder in progress, on every shard.
        await using var slice = new NpgsqlConnection(database);
        await slice.OpenAsync();
        await using NpgsqlTransaction running = await slice.BeginTransactionAsync();
        await using (var hold = new NpgsqlCommand($"SELECT count(pg_advisory_xact_lock({SliceLockSpace}, s)) FROM generate_series(0, 63) s", slice, running))
        {
            await hold.ExecuteNonQueryAsync();
        }

        await using GatewayHost gateway = await GatewayHost.StartAsync(database);
        using HttpResponseMessage response = await gateway.Client.SendAsync(WebhookRequest.Create(Encoding.UTF8.GetBytes(
            WebhookPayloads.Envelope(Account, messages: [WebhookPayloads.TextMessage("wamid.guard.live", "4915557002", 1700000000, "now")])), GatewayHost.Secret));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.Equal(0, await Database.CountAsync(database, "SELECT count(*) FROM messages"));

        await running.CommitAsync();
        await gateway.SequencedAsync();
        Assert.Equal(1, await Database.CountAsync(database, "SELECT count(*) FROM messages"));
    }

    /// <summary>A chunk of 20 history messages acknowledged by a gateway that sequences nothing.</summary>
    private static async Task AcknowledgeBackfillAsync(string database)
    {
        await using GatewayHost acknowledger = await GatewayHost.StartAsync(database, "--Memo:Sequencer:Loops=0");
        string chunk = P.HistoryChunk(Account, 1, 1, 10, [P.Thread("4915557001",
            [.. Enumerable.Range(0, 20).Select(static i => P.HistoryText($"wamid.guard.{i}", "4915557001", 1690000000 + i, "old", "READ"))])]);
        using HttpResponseMessage response = await acknowledger.Client.SendAsync(WebhookRequest.Create(Encoding.UTF8.GetBytes(chunk), GatewayHost.Secret));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    /// <summary>Runs the history lane's statement on <paramref name="connection"/> as its own live session; returns the records taken.</summary>
    private static async Task<long> SliceAsync(NpgsqlConnection connection, int shard)
    {
        await using var command = new NpgsqlCommand(SequencerSql.HistoryDrain, connection);
        command.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = [shard] });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 0 });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 50 });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = connection.ProcessID });
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        return reader.GetInt64(0);
    }
}
