namespace Memo.Ingest.Storage;

/// <summary>
/// What the gateway knows about its database: whether the schema is migrated, and whether the last write reached
/// PostgreSQL. Read by /readyz and by the writers.
/// </summary>
internal sealed class DatabaseState
{
    private volatile bool _schemaReady;
    private volatile bool _lastWriteFailed;

    public bool SchemaReady => _schemaReady;

    public bool LastWriteFailed => _lastWriteFailed;

    public void MarkSchemaReady() => _schemaReady = true;

    public void RecordWrite(bool succeeded) => _lastWriteFailed = !succeeded;
}
