using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;

namespace Memo.Ingest.Webhooks.Parsing;

/// <summary>
/// Unwinds the parser on a payload it must refuse. Only signed payloads reach the parser (the signature is checked
/// first), so this is never thrown for anonymous traffic and stays off the hot path.
/// </summary>
internal sealed class PayloadRejectedException(WebhookRejectionReason reason) : Exception(reason.ToString())
{
    public WebhookRejectionReason Reason { get; } = reason;

    [DoesNotReturn]
    [StackTraceHidden]
    public static void Throw(WebhookRejectionReason reason) => throw new PayloadRejectedException(reason);
}
