namespace Memo.Ingest.Webhooks;

/// <summary>
/// Every reason the webhook endpoint refuses a request. <see cref="WebhookRejections"/> maps each one to its status
/// code and message in one place, after Kestrel's RequestRejectionReason.
/// </summary>
public enum WebhookRejectionReason
{
    None = 0,

    // 401: the request is not provably from Meta.
    MissingSignature,
    MalformedSignature,
    SignatureMismatch,

    // 413 / 415: transport-level refusals, decided before the body is trusted.
    BodyTooLarge,
    UnsupportedMediaType,
    UnsupportedContentEncoding,

    // 400: signed, but not a payload we can store.
    InvalidUtf8,
    MalformedJson,
    InvalidStringEscape,
    UnexpectedObject,
    WrongShape,
    MissingField,
    DuplicateKey,
    KeyTooLong,

    // 403: the GET verification handshake did not match.
    VerificationFailed,
}
