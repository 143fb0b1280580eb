using System.Globalization;
using System.Text;

namespace Memo.Ingest.TestSupport;

/// <summary>
/// Realistic WhatsApp Cloud API payloads, shaped after Meta's webhook reference. Non-ASCII text is written with
/// \u escapes the way Meta sends it, so tests exercise the unescaping path.
/// </summary>
public static class WebhookPayloads
{
    /// <summary>One message object per type, with the text the sync API must return for it (null: none).</summary>
    public static IReadOnlyList<(string Type, string Json, string? ExpectedText)> MessageOfEveryType(string idPrefix, string from, long ts)
    {
        string T(int i) => (ts + i).ToString(CultureInfo.InvariantCulture);
        return
        [
            ("text", $$$"""{"from":"{{{from}}}","id":"{{{idPrefix}}}-text","timestamp":"{{{T(0)}}}","text":{"body":"Hallo J\u00f6rg \ud83d\ude00 \u05e9\u05dc\u05d5\u05dd \"quoted\" back\\slash\nnew line"},"type":"text"}""",
                "Hallo Jörg 😀 שלום \"quoted\" back\\slash\nnew line"),
            ("image", $$$"""{"from":"{{{from}}}","id":"{{{idPrefix}}}-image","timestamp":"{{{T(1)}}}","type":"image","image":{"caption":"Look \u2192 here","mime_type":"image/jpeg","sha256":"abc=","id":"media-1"}}""", "Look → here"),
            ("audio", $$$"""{"from":"{{{from}}}","id":"{{{idPrefix}}}-audio","timestamp":"{{{T(2)}}}","type":"audio","audio":{"mime_type":"audio/ogg; codecs=opus","sha256":"x","id":"media-2","voice":true}}""", null),
            ("video", $$$"""{"from":"{{{from}}}","id":"{{{idPrefix}}}-video","timestamp":"{{{T(3)}}}","type":"video","video":{"caption":"clip","mime_type":"video/mp4","sha256":"x","id":"media-3"}}""", "clip"),
            ("document", $$$"""{"from":"{{{from}}}","id":"{{{idPrefix}}}-document","timestamp":"{{{T(4)}}}","type":"document","document":{"caption":"invoice","filename":"inv.pdf","mime_type":"application/pdf","sha256":"x","id":"media-4"}}""", "invoice"),
            ("sticker", $$$"""{"from":"{{{from}}}","id":"{{{idPrefix}}}-sticker","timestamp":"{{{T(5)}}}","type":"sticker","sticker":{"mime_type":"image/webp","sha256":"x","id":"media-5","animated":false}}""", null),
            ("location", $$$"""{"from":"{{{from}}}","id":"{{{idPrefix}}}-location","timestamp":"{{{T(6)}}}","type":"location","location":{"latitude":52.52,"longitude":13.405,"name":"Brandenburger Tor","address":"Pariser Platz"}}""", "Brandenburger Tor"),
            ("contacts", $$$"""{"from":"{{{from}}}","id":"{{{idPrefix}}}-contacts","timestamp":"{{{T(7)}}}","type":"contacts","contacts":[{"name":{"formatted_name":"Ada L","first_name":"Ada"},"phones":[{"phone":"+1 555","type":"CELL","wa_id":"1555"}]}]}""", null),
            ("interactive", $$$$"""{"context":{"from":"15550001111","id":"wamid.ctx-1"},"from":"{{{{from}}}}","id":"{{{{idPrefix}}}}-button-reply","timestamp":"{{{{T(8)}}}}","type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"yes","title":"Yes \ud83d\udc4d"}}}""", "Yes 👍"),
            ("interactive", $$$$"""{"from":"{{{{from}}}}","id":"{{{{idPrefix}}}}-list-reply","timestamp":"{{{{T(9)}}}}","type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":"row-2","title":"Option B","description":"second"}}}""", "Option B"),
            ("interactive", $$$$"""{"from":"{{{{from}}}}","id":"{{{{idPrefix}}}}-flow-reply","timestamp":"{{{{T(10)}}}}","type":"interactive","interactive":{"type":"nfm_reply","nfm_reply":{"response_json":"{\"flow_token\":\"t\"}","body":"Sent","name":"flow"}}}""", "Sent"),
            ("button", $$$"""{"context":{"from":"15550001111","id":"wamid.template-1"},"from":"{{{from}}}","id":"{{{idPrefix}}}-button","timestamp":"{{{T(11)}}}","type":"button","button":{"payload":"STOP","text":"Stop promotions"}}""", "Stop promotions"),
            ("reaction", $$$"""{"from":"{{{from}}}","id":"{{{idPrefix}}}-reaction","timestamp":"{{{T(12)}}}","type":"reaction","reaction":{"message_id":"wamid.out-1","emoji":"\u2764\ufe0f"}}""", "❤️"),
            ("reaction", $$$"""{"from":"{{{from}}}","id":"{{{idPrefix}}}-reaction-removed","timestamp":"{{{T(13)}}}","type":"reaction","reaction":{"message_id":"wamid.out-1"}}""", ""),
            ("order", $$$"""{"from":"{{{from}}}","id":"{{{idPrefix}}}-order","timestamp":"{{{T(14)}}}","type":"order","order":{"catalog_id":"cat","text":"2 please","product_items":[{"product_retailer_id":"sku","quantity":"2","item_price":"9.99","currency":"EUR"}]}}""", "2 please"),
            ("system", $$$"""{"from":"{{{from}}}","id":"{{{idPrefix}}}-system","timestamp":"{{{T(15)}}}","type":"system","system":{"body":"User changed number","new_wa_id":"4915222","type":"user_changed_number"}}""", "User changed number"),
            ("unsupported", $$$"""{"from":"{{{from}}}","id":"{{{idPrefix}}}-unsupported","timestamp":"{{{T(16)}}}","type":"unsupported","errors":[{"code":131051,"title":"Message type unknown","message":"Message type unknown","error_data":{"details":"Message type is currently not supported."}}]}""", null),
            ("text", $$$"""{"context":{"forwarded":true,"frequently_forwarded":true},"from":"{{{from}}}","id":"{{{idPrefix}}}-forwarded","timestamp":"{{{T(17)}}}","type":"text","text":{"body":"fwd"}}""", "fwd"),
            ("text", $$$"""{"referral":{"source_url":"https://fb.me/x","source_id":"ad-1","source_type":"ad","headline":"H","body":"B","media_type":"image","image_url":"https://x/y.jpg","ctwa_clid":"clid"},"from":"{{{from}}}","id":"{{{idPrefix}}}-referral","timestamp":"{{{T(18)}}}","type":"text","text":{"body":"From an ad"}}""", "From an ad"),
        ];
    }

    /// <param name="callbackData">biz_opaque_callback_data, as Meta copies it from the send into its statuses.</param>
    public static string Status(string wamid, string status, long ts, string recipient, bool withErrors = false, bool withPricing = false,
        string? callbackData = null)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"{{\"id\":\"{wamid}\",\"status\":\"{status}\",\"timestamp\":\"{ts}\",\"recipient_id\":\"{recipient}\"");
        if (callbackData is not null)
        {
            sb.Append(CultureInfo.InvariantCulture, $",\"biz_opaque_callback_data\":\"{callbackData}\"");
        }

        if (withPricing)
        {
            sb.Append(CultureInfo.InvariantCulture, $$$""","conversation":{"id":"conv-1","expiration_timestamp":"{{{ts + 86400}}}","origin":{"type":"service"}},"pricing":{"billable":true,"pricing_model":"PMP","category":"service"}""");
        }

        if (withErrors)
        {
            sb.Append(""","errors":[{"code":131047,"title":"Re-engagement message","message":"Re-engagement message","error_data":{"details":"More than 24 hours have passed."}}]""");
        }

        sb.Append('}');
        return sb.ToString();
    }

    public static string Contact(string waId, string name) => $$$"""{"profile":{"name":"{{{name}}}"},"wa_id":"{{{waId}}}"}""";

    /// <summary>A full webhook body with one entry and one messages change.</summary>
    public static string Envelope(string phoneNumberId, IEnumerable<string>? messages = null, IEnumerable<string>? statuses = null,
        IEnumerable<string>? contacts = null, string wabaId = "102290129340398")
    {
        var value = new StringBuilder();
        value.Append(CultureInfo.InvariantCulture, $$$"""{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"{{{phoneNumberId}}}"}""");
        if (contacts is not null)
        {
            value.Append(""","contacts":[""").AppendJoin(',', contacts).Append(']');
        }

        if (messages is not null)
        {
            value.Append(""","messages":[""").AppendJoin(',', messages).Append(']');
        }

        if (statuses is not null)
        {
            value.Append(""","statuses":[""").AppendJoin(',', statuses).Append(']');
        }

        value.Append('}');
        return $$$"""{"object":"whatsapp_business_account","entry":[{"id":"{{{wabaId}}}","changes":[{"value":{{{value}}},"field":"messages"}]}]}""";
    }

    public static string TextMessage(string wamid, string from, long ts, string body) =>
        $$$"""{"from":"{{{from}}}","id":"{{{wamid}}}","timestamp":"{{{ts}}}","text":{"body":"{{{body}}}"},"type":"text"}""";
}
