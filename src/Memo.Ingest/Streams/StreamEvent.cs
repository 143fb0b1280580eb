using Memo.Ingest.Ingest;

namespace Memo.Ingest.Streams;

/// <summary>
/// One event as clients receive it, serialized once and shared by every connection that follows its account:
/// <see cref="Json"/> always, the MessagePack form on first use by a client that asked for it.
/// </summary>
internal sealed class StreamEvent(string account, long seq, EventKind kind, byte[] json)
{
    private byte[]? _messagePack;

    public string Account { get; } = account;

    public long Seq { get; } = seq;

    public EventKind Kind { get; } = kind;

    /// <summary><c>{"type":"event","account":…,"seq":…,"kind":…,"data":{…sync item…}}</c> as UTF-8.</summary>
    public byte[] Json { get; } = json;

    public byte[] MessagePack => _messagePack ??= MessagePackTranscoder.FromJson(Json);

    public static string KindName(EventKind kind) => kind switch
    {
        EventKind.MessageCreated => "message.created",
        EventKind.MessageStatus => "message.status",
        EventKind.ContactUpdated => "contact.updated",
        EventKind.ContactBookUpdated => "contact_book.updated",
        EventKind.HistorySync => "history.sync",
        EventKind.MessageUpdated => "message.updated",
        _ => "conversation.updated",
    };
}
