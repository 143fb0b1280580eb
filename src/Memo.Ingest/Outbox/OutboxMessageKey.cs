using System.Globalization;

namespace Memo.Ingest.Outbox;

/// <summary>
/// The key of a reply's messages row, <c>memo.outbox.&lt;outbox id&gt;</c>. It is known when the reply is queued (Meta's
/// wamid is not), and the sender passes it to Meta as <c>biz_opaque_callback_data</c>, which Meta copies into every
/// status webhook of the message: the statuses find the row by it, even if the gateway never stored the wamid.
/// </summary>
internal static class OutboxMessageKey
{
    public static ReadOnlySpan<byte> Prefix => "memo.outbox."u8;

    public static string For(long outboxId) => string.Create(CultureInfo.InvariantCulture, $"memo.outbox.{outboxId}");
}
