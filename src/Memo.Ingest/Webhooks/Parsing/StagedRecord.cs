namespace Memo.Ingest.Webhooks.Parsing;

/// <summary>
/// One row for the staging table, extracted from a webhook. All text lives in the webhook's <see cref="Utf8Arena"/>;
/// the columns are shared by the record kinds as described on each field.
/// </summary>
internal struct StagedRecord
{
    public RecordKind Kind;

    /// <summary><c>metadata.phone_number_id</c>: the account whose seq orders this record.</summary>
    public Utf8Range Account;

    public Utf8Range DisplayPhoneNumber;

    /// <summary><c>entry[].id</c>, the WhatsApp Business Account id.</summary>
    public Utf8Range WabaId;

    /// <summary>Message: <c>id</c> (wamid). Status: <c>id</c> of the message it describes.</summary>
    public Utf8Range Id;

    /// <summary>Message: <c>from</c>. Status: <c>recipient_id</c>. Contact: <c>wa_id</c>.</summary>
    public Utf8Range WaId;

    /// <summary>Message: <c>type</c>. Status: <c>status</c>. Account update: the change's <c>field</c>.</summary>
    public Utf8Range Type;

    /// <summary>Message: text body, caption, reply title or reaction emoji. Contact: <c>profile.name</c>.</summary>
    public Utf8Range Body;

    /// <summary>Message: <c>context.id</c>, the message replied to.</summary>
    public Utf8Range ContextId;

    /// <summary>Status: the raw <c>errors</c> array.</summary>
    public Utf8Range Errors;

    /// <summary>The raw JSON object as received: the message, the status, or the change's <c>value</c>.</summary>
    public Utf8Range Payload;

    /// <summary>Unix seconds (Meta sends them as strings); 0 when absent.</summary>
    public long Timestamp;

    /// <summary>Set by the duplicate screen: Redis knows this record as already committed, so it is not written.</summary>
    public bool Screened;
}
