using Microsoft.Extensions.Configuration;
using Npgsql;

namespace Memo.Ingest.Storage;

internal static class PostgresDataSource
{
    /// <summary>
    /// Builds the data source from <c>ConnectionStrings:Postgres</c> with <see cref="NpgsqlSlimDataSourceBuilder"/>,
    /// which leaves out Npgsql's reflection-based type mappings and so stays trimmable for Native AOT.
    /// </summary>
    public static NpgsqlDataSource Create(IConfiguration configuration)
    {
        string? connectionString = configuration.GetConnectionString("Postgres");
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new InvalidOperationException(
                "ConnectionStrings:Postgres is not set. Set ConnectionStrings__Postgres, or run scripts/run.sh for a local database.");
        }

        var builder = new NpgsqlSlimDataSourceBuilder(connectionString);
        builder.ConnectionStringBuilder.ApplicationName ??= "memo-ingest";
        // Arrays carry the event bus' catch-up cursors (unnest of account and seq arrays).
        builder.EnableArrays();
        return builder.Build();
    }
}
