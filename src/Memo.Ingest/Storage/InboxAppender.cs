using System.Buffers;
using System.Text;
using Memo.Ingest.Webhooks.Parsing;
using Npgsql;
using NpgsqlTypes;

namespace Memo.Ingest.Storage;

/// <summary>
/// Appends a batch's records to <c>inbox</c> on one writer connection, durably, in one implicit transaction.
///
/// Small batches (the common case: a few one-message webhooks) go through prepared multi-row INSERTs of 32, 16, 8, 4,
/// 2 and 1 rows, as many of them as the binary digits of the count, sent together in one <see cref="NpgsqlBatch"/>:
/// one round trip and no statement to parse. Binary COPY needs two round trips and sets up each COPY anew; measured on
/// our machine it cost PostgreSQL 200 µs for 8 rows against 145 µs for the INSERT, and 145 µs against 100 µs for one
/// row (docs/PERFORMANCE.md). From <see cref="CopyFromRows"/> rows on, COPY's cheaper rows win and it is used.
/// Both ways write the same row (<see cref="InboxRow"/>).
///
/// A batch that carries records of the history backfill is the exception: its history records take their ids from
/// the history lane's own sequence (migration 0010), so that a backfill never counts in the live backlog estimate
/// (<see cref="Sequencing.InboxBacklog"/>). Such a batch takes its ids first and writes them in one binary COPY,
/// which may set the identity column; batches of live traffic alone are not touched by it.
/// </summary>
internal sealed class InboxAppender : IAsyncDisposable
{
    public const int CopyFromRows = 64;

    // One prepared command per power of two below CopyFromRows: a count below it is a sum of distinct ones.
    private readonly NpgsqlBatchCommand[] _inserts = new NpgsqlBatchCommand[6];
    private readonly NpgsqlConnection _connection;
    private readonly NpgsqlBatch _batch;
    private readonly NpgsqlCommand _takeIds;

    private InboxAppender(NpgsqlConnection connection)
    {
        _connection = connection;
        _takeIds = new NpgsqlCommand(InboxSql.TakeIds, connection)
        {
            Parameters = { new NpgsqlParameter<int>(), new NpgsqlParameter<int>() },
        };
        _batch = new NpgsqlBatch(connection);
        for (int k = 0; k < _inserts.Length; k++)
        {
            _inserts[k] = CreateInsert(1 << k);
            _batch.BatchCommands.Add(_inserts[k]);
        }
    }

    public NpgsqlConnection Connection => _connection;

    /// <summary>The database this connection writes to (<see cref="Storage.DatabaseIdentity"/>), read when it opened.</summary>
    public byte[] DatabaseIdentity { get; private set; } = [];

    /// <summary>Prepares the INSERTs on <paramref name="connection"/>, which the appender uses from now on.</summary>
    public static async Task<InboxAppender> PrepareAsync(NpgsqlConnection connection)
    {
        var appender = new InboxAppender(connection);
        await appender._batch.PrepareAsync();
        await appender._takeIds.PrepareAsync();
        appender.DatabaseIdentity = await Storage.DatabaseIdentity.ReadAsync(connection);
        return appender;
    }

    /// <summary>The records of <paramref name="batch"/> that are to be appended: those not screened as already stored.</summary>
    public static int CountUnscreened(IReadOnlyList<ParsedWebhook> batch) => CountUnscreened(batch, out _);

    private static int CountUnscreened(IReadOnlyList<ParsedWebhook> batch, out int history)
    {
        int count = 0;
        history = 0;
        foreach (ParsedWebhook webhook in batch)
        {
            foreach (ref readonly StagedRecord record in webhook.Records)
            {
                count += record.Screened ? 0 : 1;
                history += record.Screened || !InboxRow.IsHistoryLane(record) ? 0 : 1;
            }
        }

        return count;
    }

    /// <summary>Appends every record of <paramref name="batch"/> not screened as already stored.</summary>
    public async Task AppendAsync(IReadOnlyList<ParsedWebhook> batch)
    {
        int count = CountUnscreened(batch, out int history);
        if (history > 0)
        {
            await CopyWithLaneIdsAsync(batch, count - history, history);
            return;
        }

        if (count >= CopyFromRows)
        {
            await CopyAsync(batch, count);
            return;
        }

        if (count == 0)
        {
            return;
        }

        // Largest chunk first, so that inbox ids follow the records' order (the sequencer numbers by id).
        _batch.BatchCommands.Clear();
        var rows = new RowCursor(batch);
        for (int k = _inserts.Length - 1; k >= 0; k--)
        {
            if ((count & (1 << k)) == 0)
            {
                continue;
            }

            NpgsqlBatchCommand insert = _inserts[k];
            for (int row = 0; row < 1 << k; row++)
            {
                rows.MoveNext();
                Bind(insert.Parameters, row * InboxRow.Columns, rows.Webhook.Arena, in rows.Record);
            }

            _batch.BatchCommands.Add(insert);
        }

        await _batch.ExecuteNonQueryAsync();
    }

    /// <summary>
    /// Writes the batch's unscreened records (<paramref name="rows"/>) in one binary COPY; with <paramref name="ids"/>
    /// (<see cref="CopyWithLaneIdsAsync"/>), each row also gets its lane's next id: live ones from index 0, history ones
    /// from <paramref name="live"/>. The rows are encoded by <see cref="InboxRow.WriteBinary"/> into one buffer and sent
    /// through Npgsql's raw binary COPY: its typed importer binds and writes every value through a parameter of its own,
    /// which took 17 % of the gateway's thread-pool CPU with 50-message webhooks (docs/PERFORMANCE.md, twenty-seventh session).
    /// </summary>
    private async Task CopyAsync(IReadOnlyList<ParsedWebhook> batch, int rows, long[]? ids = null, int live = 0)
    {
        int nextLive = 0;
        int nextHistory = live;
        using var copy = new BinaryCopyBuffer(rows * InboxRow.TypicalBinaryBytes);
        foreach (ParsedWebhook webhook in batch)
        {
            for (int i = 0; i < webhook.Count; i++)
            {
                if (webhook[i].Screened)
                {
                    continue;
                }

                long? id = ids is null ? null : InboxRow.IsHistoryLane(webhook[i]) ? ids[nextHistory++] : ids[nextLive++];
                InboxRow.WriteBinary(copy, id, webhook.Arena, in webhook[i]);
            }
        }

        await copy.CopyAsync(_connection, ids is null ? InboxSql.Copy : InboxSql.CopyWithIds);
    }

    /// <summary>
    /// Takes <paramref name="live"/> ids of the live lane and <paramref name="history"/> of the history lane (one round
    /// trip, its own implicit transaction: ids of a batch that then fails are simply never used), then writes every
    /// row with its lane's next id in one COPY, so that the batch is still appended in one transaction.
    /// </summary>
    private async Task CopyWithLaneIdsAsync(IReadOnlyList<ParsedWebhook> batch, int live, int history)
    {
        long[] ids = ArrayPool<long>.Shared.Rent(live + history);
        try
        {
            ((NpgsqlParameter<int>)_takeIds.Parameters[0]).TypedValue = live;
            ((NpgsqlParameter<int>)_takeIds.Parameters[1]).TypedValue = history;
            int nextLive = 0;
            int nextHistory = live;
            await using (NpgsqlDataReader reader = await _takeIds.ExecuteReaderAsync())
            {
                while (await reader.ReadAsync())
                {
                    ids[reader.GetBoolean(0) ? nextHistory++ : nextLive++] = reader.GetInt64(1);
                }
            }

            if (nextLive != live || nextHistory != live + history)
            {
                throw new InvalidOperationException($"Asked PostgreSQL for {live} live and {history} history inbox ids, got {nextLive} and {nextHistory - live}.");
            }

            // Each lane's ids ascending, so that they follow the records' order (the sequencer numbers by id).
            ids.AsSpan(0, live).Sort();
            ids.AsSpan(live, history).Sort();
            await CopyAsync(batch, live + history, ids, live);
        }
        finally
        {
            ArrayPool<long>.Shared.Return(ids);
        }
    }

    private static void Bind(NpgsqlParameterCollection parameters, int at, Utf8Arena arena, in StagedRecord record)
    {
        ((NpgsqlParameter<short>)parameters[at]).TypedValue = InboxRow.Kind(record);
        ((NpgsqlParameter<long?>)parameters[at + 1]).TypedValue = InboxRow.Timestamp(record);
        ((NpgsqlParameter<short>)parameters[at + 2]).TypedValue = InboxRow.Flags(record);
        for (int i = 0; i < InboxRow.Slices; i++)
        {
            Utf8Range value = InboxRow.Slice(record, i);
            // The cast matters: "? null : memory" would type the null as ReadOnlyMemory<byte> (through byte[]), an empty value.
            ((NpgsqlParameter<ReadOnlyMemory<byte>?>)parameters[at + InboxRow.Numbers + i]).TypedValue =
                value.IsNull ? (ReadOnlyMemory<byte>?)null : arena.GetMemory(value);
        }
    }

    private static NpgsqlBatchCommand CreateInsert(int rows)
    {
        var sql = new StringBuilder($"INSERT INTO inbox ({InboxSql.Columns}) VALUES ");
        var command = new NpgsqlBatchCommand();
        for (int row = 0; row < rows; row++)
        {
            sql.Append(row == 0 ? "(" : ", (");
            for (int column = 0; column < InboxRow.Columns; column++)
            {
                sql.Append(column == 0 ? "$" : ", $").Append((row * InboxRow.Columns) + column + 1);
            }

            sql.Append(')');
            command.Parameters.Add(new NpgsqlParameter<short> { NpgsqlDbType = NpgsqlDbType.Smallint });
            command.Parameters.Add(new NpgsqlParameter<long?> { NpgsqlDbType = NpgsqlDbType.Bigint });
            command.Parameters.Add(new NpgsqlParameter<short> { NpgsqlDbType = NpgsqlDbType.Smallint });
            for (int i = 0; i < InboxRow.Slices; i++)
            {
                command.Parameters.Add(new NpgsqlParameter<ReadOnlyMemory<byte>?> { NpgsqlDbType = InboxRow.SliceType(i) });
            }
        }

        command.CommandText = sql.ToString();
        return command;
    }

    public async ValueTask DisposeAsync()
    {
        await _batch.DisposeAsync();
        await _takeIds.DisposeAsync();
        await _connection.DisposeAsync();
    }

    /// <summary>Walks the unscreened records of a batch in order.</summary>
    private struct RowCursor(IReadOnlyList<ParsedWebhook> batch)
    {
        private int _webhook;
        private int _index = -1;

        public readonly ParsedWebhook Webhook => batch[_webhook];

        public readonly ref StagedRecord Record => ref batch[_webhook][_index];

        public void MoveNext()
        {
            while (true)
            {
                if (++_index >= batch[_webhook].Count)
                {
                    _webhook++;
                    _index = 0;
                    if (batch[_webhook].Count == 0)
                    {
                        _index = -1;
                        continue;
                    }
                }

                if (!batch[_webhook][_index].Screened)
                {
                    return;
                }
            }
        }
    }
}
