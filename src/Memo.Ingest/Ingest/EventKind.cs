namespace Memo.Ingest.Ingest;

/// <summary>
/// What a seq stands for. Each committed change of an account gets exactly one seq and one of these kinds; the values
/// are stored in <c>memo_events.kind</c> and are the order of events that share an arrival position.
/// </summary>
internal enum EventKind : short
{
    MessageCreated = 1,
    MessageStatus = 2,
    ContactUpdated = 3,
    ConversationUpdated = 4,

    /// <summary>An entry of a coexistence number's contact book was added, edited or removed.</summary>
    ContactBookUpdated = 5,

    /// <summary>The history backfill of a coexistence number moved (a chunk arrived, it completed, or it was declined).</summary>
    HistorySync = 6,

    /// <summary>A message's content changed in place: a history media placeholder completed by its follow-up.</summary>
    MessageUpdated = 7,
}
