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

    /// <summary>
    /// Message: <c>id</c> (wamid). Status: <c>id</c> of the message it describes. History sync: the phase, as digits.
    /// </summary>
    public Utf8Range Id;

    /// <summary>
    /// Message: <c>from</c>. Status: <c>recipient_id</c>. Contact: <c>wa_id</c>. History sync: the chunk order, as digits.
    /// </summary>
    public Utf8Range WaId;

    /// <summary>
    /// Message: <c>type</c>. Status: <c>status</c>. Account update: the change's <c>field</c>. Contact book: the
    /// action (<c>add</c>, <c>remove</c>). History sync: <c>chunk</c> or <c>declined</c>.
    /// </summary>
    public Utf8Range Type;

    /// <summary>
    /// Message: text body, caption, reply title, reaction emoji or an edit's new text. Contact: <c>profile.name</c>.
    /// Contact book: <c>full_name</c>.
    /// </summary>
    public Utf8Range Body;

    /// <summary>
    /// Message: <c>context.id</c>, the message replied to; for an edit or a revoke, the original message's id.
    /// Contact book: <c>first_name</c>.
    /// </summary>
    public Utf8Range ContextId;

    /// <summary>
    /// Message: the other party's number, normalised (<see cref="PhoneNumbers"/>): the conversation's key. Contact
    /// book: the contact's number, normalised.
    /// </summary>
    public Utf8Range Contact;

    /// <summary>
    /// Message: <c>to</c> as delivered (echoes, and history the business sent). Contact book: <c>phone_number</c> as
    /// delivered.
    /// </summary>
    public Utf8Range To;

    /// <summary>History message: <c>history_context.status</c>, lower-cased like live statuses.</summary>
    public Utf8Range HistoryStatus;

    /// <summary>Message: where it came from.</summary>
    public MessageOrigin Origin;

    /// <summary>Message: the business sent it (echoes; history whose <c>from</c> is the business number).</summary>
    public bool Outbound;

    /// <summary>History message: the media follow-up of a placeholder (<c>value.messages</c> of a <c>history</c> change).</summary>
    public bool FollowUp;

    /// <summary>Status: the raw <c>errors</c> array.</summary>
    public Utf8Range Errors;

    /// <summary>The raw JSON object as received: the message, the status, or the change's <c>value</c>.</summary>
    public Utf8Range Payload;

    /// <summary>
    /// Unix seconds (Meta sends them as strings or numbers); 0 when absent. Contact book: <c>metadata.timestamp</c>.
    /// History sync: the progress (0-100).
    /// </summary>
    public long Timestamp;

    /// <summary>Set by the duplicate screen: Redis knows this record as already committed, so it is not written.</summary>
    public bool Screened;
}
