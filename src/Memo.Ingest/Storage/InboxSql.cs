namespace Memo.Ingest.Storage;

/// <summary>
/// The acknowledgement's SQL: a batch's records appended to <c>inbox</c> in one implicit transaction (prepared
/// INSERTs or one binary COPY, <see cref="InboxAppender"/>). It takes no lock and reads nothing, so writers on any
/// number of instances never wait for each other; ordering and deduplication happen later, in the sequencer
/// (<see cref="Sequencing.SequencerSql"/>).
/// </summary>
internal static class InboxSql
{
    /// <summary>The columns a row is written in, by either way in (<see cref="InboxRow"/>).</summary>
    public const string Columns = "kind, ts, flags, account, display_phone, waba_id, msg_id, wa_id, type, body, context_id, contact, to_id, hstatus, errors, payload";

    public const string Copy = $"COPY inbox ({Columns}) FROM STDIN (FORMAT BINARY)";

    /// <summary>The same COPY with each row's id given (<see cref="TakeIds"/>): a batch that carries history.</summary>
    public const string CopyWithIds = $"COPY inbox (id, {Columns}) FROM STDIN (FORMAT BINARY)";

    /// <summary>
    /// Ids for a batch that carries history records (migration 0010): $1 from the live lane's sequence (the inbox's
    /// identity), then $2 from the history lane's; each row says whether it is a history id.
    /// </summary>
    public const string TakeIds = """
        SELECT false, nextval('inbox_id_seq') FROM generate_series(1, $1)
        UNION ALL
        SELECT true, nextval('inbox_history_id_seq') FROM generate_series(1, $2)
        """;

    /// <summary>
    /// Keeps a whole signed webhook that PostgreSQL refused even as inbox rows. $1 SQLSTATE, $2 reason, $3 body.
    /// </summary>
    public const string DeadLetterWebhook = """
        INSERT INTO dead_letters (stage, sqlstate, reason, body, received_at) VALUES ('ack', $1, $2, $3, now())
        """;
}
