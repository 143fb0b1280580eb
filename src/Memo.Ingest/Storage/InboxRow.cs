using Memo.Ingest.Webhooks.Parsing;
using NpgsqlTypes;

namespace Memo.Ingest.Storage;

/// <summary>
/// One parsed record as a row of <c>inbox</c>, in the column order of <see cref="InboxSql.Columns"/>: the one mapping
/// that both ways in (prepared INSERTs and binary COPY, <see cref="InboxAppender"/>) use. Text and the raw JSON are
/// written straight from the webhook's UTF-8 arena (no string per value); the raw JSON goes in as bytea, byte for byte
/// (no jsonb parse on the acknowledgement).
/// </summary>
internal static class InboxRow
{
    public const int Columns = 16;

    /// <summary>The columns before the arena slices: <c>kind</c>, <c>ts</c> and <c>flags</c>.</summary>
    public const int Numbers = 3;

    /// <summary>Columns after the numbers that hold a slice of the arena.</summary>
    public const int Slices = Columns - Numbers;

    public static short Kind(in StagedRecord record) => (short)record.Kind;

    public static long? Timestamp(in StagedRecord record) =>
        record.Kind is RecordKind.Message or RecordKind.Status or RecordKind.ContactBook
            || record.Kind == RecordKind.HistorySync && record.Timestamp >= 0 ? record.Timestamp : null;

    /// <summary>
    /// A message's origin (<see cref="MessageOrigin"/>) in bits 0-1, 4 when the business sent it, 16 for a history
    /// media follow-up. (8 is the sequencer's own mark for an edit applied to its original, never stored.)
    /// </summary>
    public static short Flags(in StagedRecord record) =>
        (short)((int)record.Origin | (record.Outbound ? 4 : 0) | (record.FollowUp ? 16 : 0));

    /// <summary>The <paramref name="index"/>th arena column (0 to <see cref="Slices"/> - 1).</summary>
    public static Utf8Range Slice(in StagedRecord record, int index) => index switch
    {
        0 => record.Account,
        1 => record.DisplayPhoneNumber,
        2 => record.WabaId,
        3 => record.Id,
        4 => record.WaId,
        5 => record.Type,
        6 => record.Body,
        7 => record.ContextId,
        8 => record.Contact,
        9 => record.To,
        10 => record.HistoryStatus,
        11 => record.Errors,
        _ => record.Payload,
    };

    /// <summary>A size hint per row for a <see cref="BinaryCopyBuffer"/>: a text message's row, its raw JSON included.</summary>
    public const int TypicalBinaryBytes = 512;

    /// <summary>The last two arena columns are raw JSON (bytea); the others text.</summary>
    public static NpgsqlDbType SliceType(int index) => index >= Slices - 2 ? NpgsqlDbType.Bytea : NpgsqlDbType.Text;

    /// <summary>
    /// True for a record of the history backfill's lane (a history message or its media follow-up): the sequencer takes
    /// it after live records (<c>flags &amp; 3 = 2</c>), and its inbox id comes from the lane's own sequence.
    /// </summary>
    public static bool IsHistoryLane(in StagedRecord record) => record.Origin == MessageOrigin.History;

    /// <summary>
    /// Writes <paramref name="record"/> as a row of <see cref="InboxSql.Copy"/>, or with <paramref name="id"/> as a row of
    /// <see cref="InboxSql.CopyWithIds"/>: the binary format of each column's type (smallint, bigint; text and bytea as
    /// their bytes).
    /// </summary>
    public static void WriteBinary(BinaryCopyBuffer copy, long? id, Utf8Arena arena, in StagedRecord record)
    {
        copy.StartRow((short)(id is null ? Columns : Columns + 1));
        if (id is long value)
        {
            copy.Write(value);
        }

        copy.Write(Kind(record));
        if (Timestamp(record) is long timestamp)
        {
            copy.Write(timestamp);
        }
        else
        {
            copy.WriteNull();
        }

        copy.Write(Flags(record));
        for (int i = 0; i < Slices; i++)
        {
            Utf8Range slice = Slice(record, i);
            if (slice.IsNull)
            {
                copy.WriteNull();
            }
            else
            {
                copy.Write(arena[slice]);
            }
        }
    }
}
