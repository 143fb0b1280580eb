namespace Memo.Ingest.Sync;

/// <summary>The collections the cursor sync API pages through.</summary>
internal enum SyncCollection
{
    Messages,
    Conversations,
    Contacts,
    ContactBook,
}
