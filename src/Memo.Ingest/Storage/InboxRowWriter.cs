using Memo.Ingest.Webhooks.Parsing;
using Npgsql;
using NpgsqlTypes;

namespace Memo.Ingest.Storage;

/// <summary>
/// Encodes parsed records as binary COPY rows of <c>inbox</c> (<see cref="InboxSql.Copy"/>). Text columns and the raw
/// JSON are written straight from the webhook's UTF-8 arena as <see cref="ReadOnlyMemory{T}"/>: no string is created
/// per value, and the raw JSON goes in as bytea, byte for byte (no jsonb parse on the acknowledgement).
/// </summary>
internal static class InboxRowWriter
{
    public static async ValueTask WriteAsync(NpgsqlBinaryImporter importer, Utf8Arena arena, StagedRecord record, CancellationToken cancellationToken)
    {
        await importer.StartRowAsync(cancellationToken);
        await importer.WriteAsync((short)record.Kind, NpgsqlDbType.Smallint, cancellationToken);
        await WriteAsync(importer, arena, record.Account, NpgsqlDbType.Text, cancellationToken);
        await WriteAsync(importer, arena, record.DisplayPhoneNumber, NpgsqlDbType.Text, cancellationToken);
        await WriteAsync(importer, arena, record.WabaId, NpgsqlDbType.Text, cancellationToken);
        await WriteAsync(importer, arena, record.Id, NpgsqlDbType.Text, cancellationToken);
        await WriteAsync(importer, arena, record.WaId, NpgsqlDbType.Text, cancellationToken);
        if (record.Kind is RecordKind.Message or RecordKind.Status)
        {
            await importer.WriteAsync(record.Timestamp, NpgsqlDbType.Bigint, cancellationToken);
        }
        else
        {
            await importer.WriteNullAsync(cancellationToken);
        }

        await WriteAsync(importer, arena, record.Type, NpgsqlDbType.Text, cancellationToken);
        await WriteAsync(importer, arena, record.Body, NpgsqlDbType.Text, cancellationToken);
        await WriteAsync(importer, arena, record.ContextId, NpgsqlDbType.Text, cancellationToken);
        await WriteAsync(importer, arena, record.Errors, NpgsqlDbType.Bytea, cancellationToken);
        await WriteAsync(importer, arena, record.Payload, NpgsqlDbType.Bytea, cancellationToken);
    }

    private static Task WriteAsync(NpgsqlBinaryImporter importer, Utf8Arena arena, Utf8Range value, NpgsqlDbType type, CancellationToken cancellationToken) =>
        value.IsNull
            ? importer.WriteNullAsync(cancellationToken)
            : importer.WriteAsync(arena.GetMemory(value), type, cancellationToken);
}
