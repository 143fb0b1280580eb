namespace Memo.Ingest.Webhooks.Parsing;

/// <summary>What one staged row holds. The numeric values are written to the staging table's <c>kind</c> column.</summary>
internal enum RecordKind : short
{
    /// <summary>An inbound message from <c>value.messages[]</c>.</summary>
    Message = 1,

    /// <summary>A delivery/read/failed status from <c>value.statuses[]</c>.</summary>
    Status = 2,

    /// <summary>A contact profile from <c>value.contacts[]</c>.</summary>
    Contact = 3,

    /// <summary>
    /// Anything that is not a message, status or contact (template status, account updates, webhook-level
    /// <c>errors</c>): kept whole, never rejected for its shape.
    /// </summary>
    AccountUpdate = 4,
}
