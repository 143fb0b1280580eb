namespace Memo.Ingest.Ingest;

/// <summary>One event of a committed batch as the apply SQL returns it: the staged row it came from and its seq.</summary>
internal readonly record struct EventRow(int Ord, long Seq, EventKind Kind);
