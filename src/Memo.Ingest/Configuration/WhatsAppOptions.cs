namespace Memo.Ingest.Configuration;

/// <summary>Configuration section <c>Memo:WhatsApp</c>: how Meta's requests are authenticated.</summary>
public sealed class WhatsAppOptions
{
    public const string Section = "Memo:WhatsApp";

    /// <summary>Meta app secrets whose HMAC is accepted (<c>Memo__WhatsApp__AppSecrets__0</c>, <c>__1</c>, …).
    /// Keep the old and new secret during a rotation; list every app that posts to this URL.</summary>
    public string[] AppSecrets { get; set; } = [];

    /// <summary>The token typed into Meta's "Verify token" field; the GET handshake must echo it.</summary>
    public string? VerifyToken { get; set; }

    /// <summary>Development only: lets the gateway start without any app secret and accept unsigned webhooks.
    /// Without it, a missing secret stops start-up; with it, start-up logs a critical warning and <c>/readyz</c>
    /// reports <c>"signature":"disabled"</c>. It has no effect once any secret is configured.</summary>
    public bool InsecureAcceptUnsignedWebhooks { get; set; }
}
