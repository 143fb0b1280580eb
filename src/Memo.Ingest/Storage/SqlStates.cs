using Npgsql;

namespace Memo.Ingest.Storage;

/// <summary>
/// What a PostgreSQL error says about what to do next (www.postgresql.org/docs/current/errcodes-appendix.html).
/// </summary>
internal static class SqlStates
{
    /// <summary>
    /// The error belongs to the data, not to the connection or the server: retrying the same rows fails the same way.
    /// Class 22 (data exception), 23 (integrity constraint violation) and 54 (program limit exceeded, such as an index
    /// row too large).
    /// </summary>
    public static bool IsDataError(PostgresException e) =>
        e.SqlState.StartsWith("22", StringComparison.Ordinal) ||
        e.SqlState.StartsWith("23", StringComparison.Ordinal) ||
        e.SqlState.StartsWith("54", StringComparison.Ordinal);

    /// <summary>Deadlock or serialization failure: the same work succeeds when simply tried again.</summary>
    public static bool IsRetryable(PostgresException e) => e.SqlState is "40P01" or "40001";
}
