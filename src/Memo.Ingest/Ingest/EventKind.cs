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
}
