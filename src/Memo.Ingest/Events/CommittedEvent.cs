using Memo.Ingest.Ingest;

namespace Memo.Ingest.Events;

/// <summary>
/// One committed change of an account, as the event bus delivers it: enough to fetch the row it points to.
/// <paramref name="Key"/> is the wamid (message, status) or the contact's wa_id (contact, conversation).
/// </summary>
internal sealed record CommittedEvent(string Account, long Seq, EventKind Kind, string Key, string? Status, long Timestamp);
