namespace Memo.Ingest.Ingest;

/// <summary>What one committed batch changed: events by kind (each event took one seq).</summary>
internal struct BatchSummary
{
    public int MessagesCreated;
    public int StatusEvents;
    public int ContactsUpdated;
    public int ConversationsUpdated;

    public readonly int Events => MessagesCreated + StatusEvents + ContactsUpdated + ConversationsUpdated;

    public void Add(EventKind kind)
    {
        switch (kind)
        {
            case EventKind.MessageCreated: MessagesCreated++; break;
            case EventKind.MessageStatus: StatusEvents++; break;
            case EventKind.ContactUpdated: ContactsUpdated++; break;
            case EventKind.ConversationUpdated: ConversationsUpdated++; break;
        }
    }
}
