using System.Globalization;

namespace Memo.Ingest.Outbox;

/// <summary>
/// The key of a reply's messages row, <c>memo.outbox.&lt;outbox id&gt;</c>. It is known when the reply is queued (Meta's
/// wamid is not), and the sender passes it to Meta as <c>biz_opaque_callback_data</c>, which Meta copies into every
/// status webhook of the message: the statuses find the row by it, even if the gateway never stored the wamid.
/// </summary>
internal static class OutboxMessageKey
{
    /// <summary>The key's text before the id; <see cref="OutboxSql"/> builds keys from it too (<see cref="Sql"/>).</summary>
    public const string Text = "memo.outbox.";

    /// <summary>The key of an outbox row <c>id</c> in SQL.</summary>
    public const string Sql = "'" + Text + "' || id";

    public static ReadOnlySpan<byte> Prefix => "memo.outbox."u8;

    public static string For(long outboxId) => string.Create(CultureInfo.InvariantCulture, $"{Text}{outboxId}");
}
