namespace Memo.Ingest.Webhooks.Parsing;

/// <summary>What one staged row holds. The numeric values are written to the inbox's <c>kind</c> column.</summary>
internal enum RecordKind : short
{
    /// <summary>
    /// A message: inbound from <c>messages</c>, an echo of what the business sent from the WhatsApp Business app
    /// (<c>smb_message_echoes</c>), or a message of the history backfill (<c>history</c>); <see cref="MessageOrigin"/>.
    /// </summary>
    Message = 1,

    /// <summary>A delivery/read/failed status from <c>value.statuses[]</c>.</summary>
    Status = 2,

    /// <summary>A contact profile from <c>value.contacts[]</c>.</summary>
    Contact = 3,

    /// <summary>
    /// Anything that is not one of the others (template status, account updates, webhook-level <c>errors</c>): kept
    /// whole, never rejected for its shape.
    /// </summary>
    AccountUpdate = 4,

    /// <summary>An entry of the phone's contact book (<c>smb_app_state_sync</c>): add (or edit) or remove.</summary>
    ContactBook = 5,

    /// <summary>The progress of the history backfill: a chunk's phase, order and progress, or its refusal.</summary>
    HistorySync = 6,
}
