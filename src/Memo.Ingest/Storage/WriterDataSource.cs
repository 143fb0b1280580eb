using Npgsql;

namespace Memo.Ingest.Storage;

/// <summary>
/// The write path's connection pool, a type of its own so that dependency injection can never hand the read pool to a
/// writer or the other way round (<see cref="PostgresDataSource.CreateWriter"/>).
/// </summary>
internal sealed class WriterDataSource(NpgsqlDataSource dataSource) : IAsyncDisposable
{
    public NpgsqlDataSource DataSource { get; } = dataSource;

    public ValueTask<NpgsqlConnection> OpenConnectionAsync(CancellationToken cancellationToken = default) =>
        DataSource.OpenConnectionAsync(cancellationToken);

    public ValueTask DisposeAsync() => DataSource.DisposeAsync();
}
