using Memo.Ingest.Webhooks.Parsing;

namespace Memo.Ingest.Ingest;

/// <summary>Where the staged row with a given <c>ord</c> came from: the writer maps committed events back to text.</summary>
internal readonly record struct StagedPosition(ParsedWebhook Webhook, int Index)
{
    public ref StagedRecord Record => ref Webhook[Index];
}
