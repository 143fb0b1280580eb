using System.Globalization;

namespace Memo.Ingest.TestSupport;

/// <summary>
/// Webhooks of coexistence numbers in Meta's shapes (../shared/COEXISTENCE-FACTS.md): echoes of what the business sent
/// from the WhatsApp Business app, history chunks and media follow-ups, a declined history, and the contact book.
/// </summary>
public static class CoexistencePayloads
{
    /// <summary>The business number of the payloads below (display_phone_number).</summary>
    public const string Business = "15550001111";

    /// <summary>One change of <paramref name="field"/> whose value holds <paramref name="items"/> (already JSON: <c>"key":[...]</c>).</summary>
    public static string Change(string account, string field, string items, string display = Business) =>
        $$$"""{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"{{{field}}}","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"{{{display}}}","phone_number_id":"{{{account}}}"},{{{items}}}}}]}]}""";

    /// <summary>Several changes in one POST (each from <see cref="ChangeObject"/>).</summary>
    public static string Changes(params string[] changes) =>
        $$$"""{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{{{string.Join(',', changes)}}}]}]}""";

    public static string ChangeObject(string account, string field, string items) =>
        $$$"""{"field":"{{{field}}}","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"{{{Business}}}","phone_number_id":"{{{account}}}"},{{{items}}}}}""";

    public static string Echoes(string account, params string[] echoes) =>
        Change(account, "smb_message_echoes", $"\"message_echoes\":[{string.Join(',', echoes)}]");

    /// <summary>An echo of a text the business typed on its phone, to <paramref name="to"/> as typed there.</summary>
    public static string EchoText(string wamid, string to, long ts, string body, bool numericTimestamp = false) =>
        $$$"""{"from":"{{{Business}}}","to":"{{{to}}}","id":"{{{wamid}}}","timestamp":{{{Ts(ts, numericTimestamp)}}},"type":"text","text":{"body":"{{{body}}}"}}""";

    public static string EchoEdit(string wamid, string to, long ts, string original, string body) =>
        $$$"""{"from":"{{{Business}}}","to":"{{{to}}}","id":"{{{wamid}}}","timestamp":"{{{ts}}}","type":"edit","edit":{"original_message_id":"{{{original}}}","message":{"type":"text","text":{"body":"{{{body}}}"}""" + "}}}";

    public static string EchoRevoke(string wamid, string to, long ts, string original) =>
        $$$"""{"from":"{{{Business}}}","to":"{{{to}}}","id":"{{{wamid}}}","timestamp":"{{{ts}}}","type":"revoke","revoke":{"original_message_id":"{{{original}}}"}}""";

    /// <summary>A history chunk: <paramref name="threads"/> from <see cref="Thread"/>; numbers may be sent as strings.</summary>
    public static string HistoryChunk(string account, int phase, int chunkOrder, int progress, IEnumerable<string> threads, bool asStrings = false)
    {
        string n(int value) => asStrings ? $"\"{value}\"" : value.ToString(CultureInfo.InvariantCulture);
        return Change(account, "history",
            $$$"""
            "history":[{"metadata":{"phase":{{{n(phase)}}},"chunk_order":{{{n(chunkOrder)}}},"progress":{{{n(progress)}}}},"threads":[{{{string.Join(',', threads)}}}]}]
            """);
    }

    public static string Thread(string user, params string[] messages) =>
        $$$"""{"id":"{{{user}}}","messages":[{{{string.Join(',', messages)}}}]}""";

    /// <summary>A history message; <paramref name="from"/> is the user or <see cref="Business"/> (then <paramref name="to"/> is set).</summary>
    public static string HistoryText(string wamid, string from, long ts, string body, string status, string? to = null) =>
        $$$"""{"from":"{{{from}}}",{{{(to is null ? "" : $"\"to\":\"{to}\",")}}}"id":"{{{wamid}}}","timestamp":"{{{ts}}}","type":"text","text":{"body":"{{{body}}}"},"history_context":{"status":"{{{status}}}"}}""";

    public static string HistoryPlaceholder(string wamid, string from, long ts, string status) =>
        $$$"""{"from":"{{{from}}}","id":"{{{wamid}}}","timestamp":"{{{ts}}}","type":"media_placeholder","history_context":{"status":"{{{status}}}"}}""";

    /// <summary>The media follow-up of a placeholder (<c>history</c> field, <c>value.messages</c>).</summary>
    public static string MediaFollowUp(string account, string wamid, string from, long ts, string caption) =>
        Change(account, "history",
            $$$"""
            "messages":[{"from":"{{{from}}}","id":"{{{wamid}}}","timestamp":"{{{ts}}}","type":"image","image":{"caption":"{{{caption}}}","mime_type":"image/jpeg","sha256":"abc","id":"media.{{{wamid}}}"}}]
            """);

    public static string HistoryDeclined(string account) =>
        Change(account, "history",
            """
            "history":[{"errors":[{"code":2593109,"title":"History sync is turned off by the business","message":"History sync is turned off by the business","error_data":{"details":"The business declined to share chat history"}}]}]
            """);

    /// <summary>The declined history as Meta's reference shows it: a bare change value, no envelope.</summary>
    public static string HistoryDeclinedBare(string account) =>
        $$$"""{"messaging_product":"whatsapp","metadata":{"display_phone_number":"{{{Business}}}","phone_number_id":"{{{account}}}"},"history":[{"errors":[{"code":2593109,"title":"History sync is turned off by the business","message":"History sync is turned off by the business","error_data":{"details":"The business declined to share chat history"}}]}]}""";

    public static string ContactBook(string account, params string[] entries) =>
        Change(account, "smb_app_state_sync", $"\"state_sync\":[{string.Join(',', entries)}]");

    public static string ContactAdd(string phone, string fullName, string firstName, long ts, bool numericTimestamp = false) =>
        $$$"""{"type":"contact","contact":{"full_name":"{{{fullName}}}","first_name":"{{{firstName}}}","phone_number":"{{{phone}}}"},"action":"add","metadata":{"timestamp":{{{Ts(ts, numericTimestamp)}}}}}""";

    public static string ContactRemove(string phone, long ts) =>
        $$$"""{"type":"contact","contact":{"phone_number":"{{{phone}}}"},"action":"remove","metadata":{"timestamp":"{{{ts}}}"}}""";

    private static string Ts(long ts, bool numeric) => numeric ? ts.ToString(CultureInfo.InvariantCulture) : $"\"{ts}\"";
}
