namespace Memo.Ingest.Load;

/// <summary>A command line the tool cannot run (an unknown option, a missing or malformed value): the tool prints the
/// reason and its usage and exits with 2, instead of a stack trace.</summary>
internal sealed class UsageException(string message) : Exception(message);
