namespace Memo.Ingest.Storage;

/// <summary>
/// Whether the schema is migrated: writers refuse batches (503) until it is, and /readyz reports it.
/// </summary>
internal sealed class DatabaseState
{
    private volatile bool _schemaReady;

    public bool SchemaReady => _schemaReady;

    public void MarkSchemaReady() => _schemaReady = true;
}
