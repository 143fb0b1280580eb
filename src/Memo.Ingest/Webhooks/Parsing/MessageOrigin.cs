namespace Memo.Ingest.Webhooks.Parsing;

/// <summary>Where a message record came from: the low bits of the inbox's <c>flags</c> column.</summary>
internal enum MessageOrigin : byte
{
    /// <summary>A <c>messages</c> change: a user wrote to the business just now.</summary>
    Live = 0,

    /// <summary>
    /// A <c>smb_message_echoes</c> change: the business wrote from the WhatsApp Business app (coexistence numbers).
    /// </summary>
    Echo = 1,

    /// <summary>A <c>history</c> change: a message from before the number joined the Cloud API, or its media follow-up.</summary>
    History = 2,
}
