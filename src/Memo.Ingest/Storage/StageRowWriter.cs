using Memo.Ingest.Webhooks.Parsing;
using Npgsql;
using NpgsqlTypes;

namespace Memo.Ingest.Storage;

/// <summary>
/// Encodes staged records as binary COPY rows of <c>memo_stage</c>. Text and JSON columns are written straight from
/// the webhook's UTF-8 arena as <see cref="ReadOnlyMemory{T}"/>: no string is created per value.
/// </summary>
internal static class StageRowWriter
{
    public static async ValueTask WriteAsync(NpgsqlBinaryImporter importer, Utf8Arena arena, StagedRecord record, int ord, CancellationToken cancellationToken)
    {
        await importer.StartRowAsync(cancellationToken);
        await importer.WriteAsync(ord, NpgsqlDbType.Integer, cancellationToken);
        await importer.WriteAsync((short)record.Kind, NpgsqlDbType.Smallint, cancellationToken);
        await WriteUtf8Async(importer, arena, record.Account, NpgsqlDbType.Text, cancellationToken);
        await WriteUtf8Async(importer, arena, record.DisplayPhoneNumber, NpgsqlDbType.Text, cancellationToken);
        await WriteUtf8Async(importer, arena, record.WabaId, NpgsqlDbType.Text, cancellationToken);
        await WriteUtf8Async(importer, arena, record.Id, NpgsqlDbType.Text, cancellationToken);
        await WriteUtf8Async(importer, arena, record.WaId, NpgsqlDbType.Text, cancellationToken);
        if (record.Kind is RecordKind.Message or RecordKind.Status)
        {
            await importer.WriteAsync(record.Timestamp, NpgsqlDbType.Bigint, cancellationToken);
        }
        else
        {
            await importer.WriteNullAsync(cancellationToken);
        }

        await WriteUtf8Async(importer, arena, record.Type, NpgsqlDbType.Text, cancellationToken);
        await WriteUtf8Async(importer, arena, record.Body, NpgsqlDbType.Text, cancellationToken);
        await WriteUtf8Async(importer, arena, record.ContextId, NpgsqlDbType.Text, cancellationToken);
        await WriteUtf8Async(importer, arena, record.Errors, NpgsqlDbType.Jsonb, cancellationToken);
        await WriteUtf8Async(importer, arena, record.Payload, NpgsqlDbType.Jsonb, cancellationToken);
    }

    private static Task WriteUtf8Async(NpgsqlBinaryImporter importer, Utf8Arena arena, Utf8Range value, NpgsqlDbType type, CancellationToken cancellationToken) =>
        value.IsNull
            ? importer.WriteNullAsync(cancellationToken)
            : importer.WriteAsync(arena.GetMemory(value), type, cancellationToken);
}
