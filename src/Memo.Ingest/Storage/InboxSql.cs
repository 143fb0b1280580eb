namespace Memo.Ingest.Storage;

/// <summary>
/// The acknowledgement's SQL: one binary COPY of a batch's records into <c>inbox</c>, in autocommit (the COPY is its
/// own transaction). It takes no lock and reads nothing, so writers on any number of instances never wait for each
/// other; ordering and deduplication happen later, in the sequencer (<see cref="SequencerSql"/>).
/// </summary>
internal static class InboxSql
{
    public const string Copy = """
        COPY inbox (kind, account, display_phone, waba_id, msg_id, wa_id, ts, type, body, context_id, errors, payload)
        FROM STDIN (FORMAT BINARY)
        """;

    /// <summary>
    /// Keeps a whole signed webhook that PostgreSQL refused even as inbox rows. $1 SQLSTATE, $2 reason, $3 body.
    /// </summary>
    public const string DeadLetterWebhook = """
        INSERT INTO dead_letters (stage, sqlstate, reason, body, received_at) VALUES ('ack', $1, $2, $3, now())
        """;
}
