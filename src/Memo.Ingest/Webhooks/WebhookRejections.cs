using Microsoft.AspNetCore.Http;

namespace Memo.Ingest.Webhooks;

/// <summary>The single map from <see cref="WebhookRejectionReason"/> to HTTP status, wire code and message.</summary>
internal static class WebhookRejections
{
    public static int StatusCode(WebhookRejectionReason reason) => reason switch
    {
        WebhookRejectionReason.MissingSignature or
        WebhookRejectionReason.MalformedSignature or
        WebhookRejectionReason.SignatureMismatch => StatusCodes.Status401Unauthorized,
        WebhookRejectionReason.BodyTooLarge => StatusCodes.Status413PayloadTooLarge,
        WebhookRejectionReason.UnsupportedMediaType or
        WebhookRejectionReason.UnsupportedContentEncoding => StatusCodes.Status415UnsupportedMediaType,
        WebhookRejectionReason.VerificationFailed => StatusCodes.Status403Forbidden,
        _ => StatusCodes.Status400BadRequest,
    };

    /// <summary>A stable snake_case code, used in the response body, in logs and as a metric tag.</summary>
    public static string Code(WebhookRejectionReason reason) => reason switch
    {
        WebhookRejectionReason.MissingSignature => "missing_signature",
        WebhookRejectionReason.MalformedSignature => "malformed_signature",
        WebhookRejectionReason.SignatureMismatch => "signature_mismatch",
        WebhookRejectionReason.BodyTooLarge => "body_too_large",
        WebhookRejectionReason.UnsupportedMediaType => "unsupported_media_type",
        WebhookRejectionReason.UnsupportedContentEncoding => "unsupported_content_encoding",
        WebhookRejectionReason.InvalidUtf8 => "invalid_utf8",
        WebhookRejectionReason.MalformedJson => "malformed_json",
        WebhookRejectionReason.InvalidStringEscape => "invalid_string_escape",
        WebhookRejectionReason.UnexpectedObject => "unexpected_object",
        WebhookRejectionReason.WrongShape => "wrong_shape",
        WebhookRejectionReason.MissingField => "missing_field",
        WebhookRejectionReason.DuplicateKey => "duplicate_key",
        WebhookRejectionReason.KeyTooLong => "key_too_long",
        WebhookRejectionReason.VerificationFailed => "verification_failed",
        _ => "none",
    };

    public static string Message(WebhookRejectionReason reason) => reason switch
    {
        WebhookRejectionReason.MissingSignature => "The X-Hub-Signature-256 header is missing.",
        WebhookRejectionReason.MalformedSignature => "X-Hub-Signature-256 must be 'sha256=' followed by 64 hex digits.",
        WebhookRejectionReason.SignatureMismatch => "X-Hub-Signature-256 does not match the body for any configured app secret.",
        WebhookRejectionReason.BodyTooLarge => "The body exceeds the configured limit (Memo:Ingest:MaxBodyBytes).",
        WebhookRejectionReason.UnsupportedMediaType => "The body must be application/json.",
        WebhookRejectionReason.UnsupportedContentEncoding => "Compressed bodies are not accepted; Meta sends identity encoding.",
        WebhookRejectionReason.InvalidUtf8 => "The body is not valid UTF-8.",
        WebhookRejectionReason.MalformedJson => "The body is not well-formed JSON.",
        WebhookRejectionReason.InvalidStringEscape => "A JSON string holds an escape that is not valid UTF-16 (a lone surrogate).",
        WebhookRejectionReason.UnexpectedObject => "The 'object' field must be 'whatsapp_business_account'.",
        WebhookRejectionReason.WrongShape => "A field has the wrong JSON type or format.",
        WebhookRejectionReason.MissingField => "A required field is missing (object, entry, field, value, metadata.phone_number_id, id, status or timestamp).",
        WebhookRejectionReason.DuplicateKey => "A JSON object repeats a key the gateway reads.",
        WebhookRejectionReason.KeyTooLong => "An id, phone number, status or field name is longer than 256 bytes.",
        WebhookRejectionReason.VerificationFailed => "hub.mode or hub.verify_token does not match.",
        _ => string.Empty,
    };
}
