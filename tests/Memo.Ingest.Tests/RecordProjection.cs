using System.Text;
using Memo.Ingest.Webhooks.Parsing;

namespace Memo.Ingest.Tests;

/// <summary>Turns parsed records into comparable text, so tests can compare whole results.</summary>
internal static class RecordProjection
{
    public static string Describe(ParsedWebhook webhook, int index)
    {
        StagedRecord r = webhook[index];
        string S(Utf8Range range) => range.IsNull ? "∅" : Encoding.UTF8.GetString(webhook.Arena[range]);
        return $"{r.Kind}|acct={S(r.Account)}|disp={S(r.DisplayPhoneNumber)}|waba={S(r.WabaId)}|id={S(r.Id)}|wa={S(r.WaId)}|ts={r.Timestamp}|type={S(r.Type)}|body={S(r.Body)}|ctx={S(r.ContextId)}|err={S(r.Errors)}|payload={S(r.Payload)}|origin={r.Origin}|out={r.Outbound}|contact={S(r.Contact)}|to={S(r.To)}|hstatus={S(r.HistoryStatus)}";
    }

    public static List<string> DescribeAll(ParsedWebhook webhook) =>
        Enumerable.Range(0, webhook.Count).Select(i => Describe(webhook, i)).ToList();

    public static string Text(ParsedWebhook webhook, Utf8Range range) =>
        range.IsNull ? null! : Encoding.UTF8.GetString(webhook.Arena[range]);
}
