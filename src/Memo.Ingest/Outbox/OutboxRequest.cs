using System.Buffers;
using System.Text.Json;

namespace Memo.Ingest.Outbox;

/// <summary>
/// A reply as a client posts it: a Cloud API message body (<c>to</c>, <c>type</c> and the type's object, optionally
/// <c>context.message_id</c>), checked before it is queued so that what cannot be sent is refused with a 400 now rather
/// than failing at Meta later. What the stream shows of it (recipient, text, reply target) is read here once.
/// </summary>
internal sealed class OutboxRequest
{
    public const int MaxBodyBytes = 64 * 1024;

    // The types the Cloud API sends, and for media the object's required reference.
    private static readonly string[] s_mediaTypes = ["image", "audio", "video", "document", "sticker"];
    private static readonly string[] s_otherTypes = ["text", "template", "interactive", "reaction", "location", "contacts"];

    private OutboxRequest(string to, string type, string? text, string? contextId)
    {
        To = to;
        Type = type;
        Text = text;
        ContextId = contextId;
    }

    public string To { get; }

    public string Type { get; }

    /// <summary>What the inbox shows: the text, a caption, a reaction's emoji, a template's name, an interactive body.</summary>
    public string? Text { get; }

    /// <summary><c>context.message_id</c>: the message this one replies to.</summary>
    public string? ContextId { get; }

    /// <summary>Reads and checks <paramref name="body"/>; null with <paramref name="error"/> set when it cannot be sent.</summary>
    public static OutboxRequest? TryParse(ReadOnlyMemory<byte> body, out string? error)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 32 });
            return Check(document.RootElement, out error);
        }
        catch (JsonException)
        {
            error = "The body is not valid JSON.";
            return null;
        }
    }

    private static OutboxRequest? Check(JsonElement root, out string? error)
    {
        error = null;
        if (root.ValueKind != JsonValueKind.Object)
        {
            error = "The body must be a JSON object (a Cloud API message).";
            return null;
        }

        if (root.TryGetProperty("messaging_product", out JsonElement product)
            && (product.ValueKind != JsonValueKind.String || !product.ValueEquals("whatsapp")))
        {
            error = "messaging_product must be \"whatsapp\" (or left out).";
            return null;
        }

        if (root.TryGetProperty("biz_opaque_callback_data", out _))
        {
            error = "biz_opaque_callback_data is set by the gateway: it is how Meta's statuses find the reply.";
            return null;
        }

        if (root.TryGetProperty("recipient_type", out JsonElement recipientType)
            && (recipientType.ValueKind != JsonValueKind.String || !recipientType.ValueEquals("individual")))
        {
            error = "recipient_type must be \"individual\" (or left out).";
            return null;
        }

        if (!root.TryGetProperty("to", out JsonElement toElement) || toElement.ValueKind != JsonValueKind.String
            || toElement.GetString() is not { Length: > 0 and <= 64 } to)
        {
            error = "to (the recipient's WhatsApp id or phone number) is required.";
            return null;
        }

        if (!root.TryGetProperty("type", out JsonElement typeElement) || typeElement.ValueKind != JsonValueKind.String
            || typeElement.GetString() is not { } type || (Array.IndexOf(s_mediaTypes, type) < 0 && Array.IndexOf(s_otherTypes, type) < 0))
        {
            error = "type is required: text, image, audio, video, document, sticker, template, interactive, reaction, location or contacts.";
            return null;
        }

        if (!root.TryGetProperty(type, out JsonElement content) || content.ValueKind != (type == "contacts" ? JsonValueKind.Array : JsonValueKind.Object))
        {
            error = $"The message of type {type} needs its \"{type}\" {(type == "contacts" ? "array" : "object")}.";
            return null;
        }

        string? text = null;
        switch (type)
        {
            case "text":
                text = String(content, "body");
                if (text is not { Length: > 0 and <= 4096 })
                {
                    error = "text.body is required (1 to 4,096 characters).";
                    return null;
                }

                break;
            case "template":
                text = String(content, "name");
                if (text is not { Length: > 0 })
                {
                    error = "template.name is required.";
                    return null;
                }

                break;
            case "reaction":
                text = String(content, "emoji");
                if (String(content, "message_id") is not { Length: > 0 })
                {
                    error = "reaction.message_id is required.";
                    return null;
                }

                break;
            case "interactive":
                text = content.TryGetProperty("body", out JsonElement interactiveBody) ? String(interactiveBody, "text") : null;
                break;
            case "location":
            case "contacts":
                break;
            default:
                if (String(content, "id") is null && String(content, "link") is null)
                {
                    error = $"{type} needs an id (uploaded media) or a link.";
                    return null;
                }

                text = String(content, "caption");
                break;
        }

        string? contextId = root.TryGetProperty("context", out JsonElement context) && context.ValueKind == JsonValueKind.Object
            ? String(context, "message_id")
            : null;
        return new OutboxRequest(to, type, text, contextId);
    }

    private static string? String(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : null;

    /// <summary>
    /// The body the sender posts to Meta: the client's message with <c>messaging_product</c> and the row's key as
    /// <c>biz_opaque_callback_data</c>.
    /// </summary>
    public static void WriteSendBody(ReadOnlyMemory<byte> request, string messageKey, IBufferWriter<byte> output)
    {
        using JsonDocument document = JsonDocument.Parse(request);
        using var json = new Utf8JsonWriter(output);
        json.WriteStartObject();
        json.WriteString("messaging_product", "whatsapp");
        foreach (JsonProperty property in document.RootElement.EnumerateObject())
        {
            if (!property.NameEquals("messaging_product"))
            {
                property.WriteTo(json);
            }
        }

        json.WriteString("biz_opaque_callback_data", messageKey);
        json.WriteEndObject();
    }
}
