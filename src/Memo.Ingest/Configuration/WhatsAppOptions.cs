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
}
