using System.Buffers;
using System.Text;
using Memo.Ingest.TestSupport;
using Memo.Ingest.Webhooks;
using Memo.Ingest.Webhooks.Parsing;
using Xunit;

namespace Memo.Ingest.Tests;

/// <summary>The coexistence fields routed by <c>field</c> into records (../shared/COEXISTENCE-FACTS.md).</summary>
public sealed class CoexistenceParsingTests
{
    /// <summary>One POST with every coexistence field and a live message, in one entry.</summary>
    public static readonly string MixedFields = CoexistencePayloads.Changes(
        CoexistencePayloads.ChangeObject("PNco", "smb_message_echoes",
            "\"message_echoes\":[" + CoexistencePayloads.EchoText("wamid.e1", "+55 11 98765-4321", 1700000100, "hi from the phone") + "]"),
        CoexistencePayloads.ChangeObject("PNco", "history",
            "\"history\":[{\"metadata\":{\"phase\":\"1\",\"chunk_order\":2,\"progress\":\"55\"},\"threads\":[" +
            CoexistencePayloads.Thread("5511987654321",
                CoexistencePayloads.HistoryText("wamid.h1", "5511987654321", 1690000000, "old question", "READ"),
                CoexistencePayloads.HistoryText("wamid.h2", CoexistencePayloads.Business, 1690000060, "old answer", "DELIVERED", to: "5511987654321")) +
            "]}]"),
        CoexistencePayloads.ChangeObject("PNco", "smb_app_state_sync",
            "\"state_sync\":[" + CoexistencePayloads.ContactAdd("+52 1 55 1234 5678", "Ana López", "Ana", 1700000050, numericTimestamp: true) + "]"),
        """{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"PNco"},"messages":[""" +
            WebhookPayloads.TextMessage("wamid.l1", "551187654321", 1700000200, "live") + "]}}");

    private static ParsedWebhook ParseOk(string body)
    {
        var webhook = new ParsedWebhook();
        Assert.Equal(WebhookRejectionReason.None, WebhookPayloadReader.Parse(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(body)), webhook));
        return webhook;
    }

    private static string S(ParsedWebhook webhook, Utf8Range range) => RecordProjection.Text(webhook, range);

    [Theory]
    [InlineData("+55 11 98765-4321", "551187654321")]   // Brazil mobile with the 9th digit
    [InlineData("551187654321", "551187654321")]       // ... and without it
    [InlineData("5511987654321", "551187654321")]
    [InlineData("+52 1 55 1234 5678", "525512345678")] // Mexico 521 + 10 digits
    [InlineData("525512345678", "525512345678")]
    [InlineData("+1 (650) 555-1234", "16505551234")]
    [InlineData("4915550001", "4915550001")]
    [InlineData("551187654321999", "551187654321999")]   // not a Brazilian mobile: kept
    public void PhoneNumbers_NormaliseToOneFormPerContact(string raw, string expected)
    {
        Span<byte> digits = stackalloc byte[PhoneNumbers.MaxDigits];
        int length = PhoneNumbers.Normalise(Encoding.UTF8.GetBytes(raw), digits);
        Assert.Equal(expected, Encoding.UTF8.GetString(digits[..length]));
    }

    [Fact]
    public void MixedFields_EveryChangeRoutedByItsField()
    {
        ParsedWebhook webhook = ParseOk(MixedFields);
        StagedRecord[] records = webhook.Records.ToArray();
        Assert.Equal(
            [RecordKind.Message, RecordKind.HistorySync, RecordKind.Message, RecordKind.Message, RecordKind.ContactBook, RecordKind.Message],
            records.Select(static r => r.Kind));

        StagedRecord echo = records[0];
        Assert.Equal(MessageOrigin.Echo, echo.Origin);
        Assert.True(echo.Outbound);
        Assert.Equal("551187654321", S(webhook, echo.Contact));
        Assert.Equal("+55 11 98765-4321", S(webhook, echo.To));
        Assert.Equal("hi from the phone", S(webhook, echo.Body));
        Assert.Equal("PNco", S(webhook, echo.Account));

        StagedRecord chunk = records[1];
        Assert.Equal("chunk", S(webhook, chunk.Type));
        Assert.Equal("1", S(webhook, chunk.Id));
        Assert.Equal("2", S(webhook, chunk.WaId));
        Assert.Equal(55, chunk.Timestamp);

        StagedRecord fromUser = records[2];
        Assert.Equal(MessageOrigin.History, fromUser.Origin);
        Assert.False(fromUser.Outbound);
        Assert.Equal("551187654321", S(webhook, fromUser.Contact));
        Assert.Equal("READ", S(webhook, fromUser.HistoryStatus));

        StagedRecord fromBusiness = records[3];
        Assert.True(fromBusiness.Outbound);
        Assert.Equal("551187654321", S(webhook, fromBusiness.Contact));
        Assert.Equal("5511987654321", S(webhook, fromBusiness.To));

        StagedRecord book = records[4];
        Assert.Equal("add", S(webhook, book.Type));
        Assert.Equal("525512345678", S(webhook, book.Contact));
        Assert.Equal("+52 1 55 1234 5678", S(webhook, book.To));
        Assert.Equal("Ana López", S(webhook, book.Body));
        Assert.Equal("Ana", S(webhook, book.ContextId));
        Assert.Equal(1700000050, book.Timestamp);

        StagedRecord live = records[5];
        Assert.Equal(MessageOrigin.Live, live.Origin);
        Assert.Equal("551187654321", S(webhook, live.Contact));
    }

    [Fact]
    public void EditsAndRevokes_PointAtTheirOriginal()
    {
        ParsedWebhook webhook = ParseOk(CoexistencePayloads.Echoes("PNco",
            CoexistencePayloads.EchoEdit("wamid.e2", "4915550001", 1700000300, "wamid.e1", "fixed text"),
            CoexistencePayloads.EchoRevoke("wamid.e3", "4915550001", 1700000400, "wamid.e1")));

        Assert.Equal("edit", S(webhook, webhook[0].Type));
        Assert.Equal("wamid.e1", S(webhook, webhook[0].ContextId));
        Assert.Equal("fixed text", S(webhook, webhook[0].Body));
        Assert.Equal("revoke", S(webhook, webhook[1].Type));
        Assert.Equal("wamid.e1", S(webhook, webhook[1].ContextId));
    }

    [Fact]
    public void HistoryFollowUpDeclinedAndRemovals_AreRecords()
    {
        ParsedWebhook followUp = ParseOk(CoexistencePayloads.MediaFollowUp("PNco", "wamid.p1", "4915550001", 1690000100, "the photo"));
        Assert.Equal(MessageOrigin.History, followUp[0].Origin);
        Assert.Equal("image", S(followUp, followUp[0].Type));
        Assert.Equal("the photo", S(followUp, followUp[0].Body));
        Assert.Equal("4915550001", S(followUp, followUp[0].Contact));

        ParsedWebhook declined = ParseOk(CoexistencePayloads.HistoryDeclined("PNco"));
        Assert.Equal(RecordKind.HistorySync, declined[0].Kind);
        Assert.Equal("declined", S(declined, declined[0].Type));
        Assert.Contains("2593109", S(declined, declined[0].Errors), StringComparison.Ordinal);

        ParsedWebhook removal = ParseOk(CoexistencePayloads.ContactBook("PNco", CoexistencePayloads.ContactRemove("+49 1555 0001", 1700000500)));
        Assert.Equal("remove", S(removal, removal[0].Type));
        Assert.Equal("4915550001", S(removal, removal[0].Contact));
        Assert.Null(S(removal, removal[0].Body));
    }

    [Fact]
    public void ProgressOnlyChunk_AndNonNumericProgress()
    {
        ParsedWebhook empty = ParseOk(CoexistencePayloads.HistoryChunk("PNco", 2, 7, 100, threads: []));
        Assert.Equal(1, empty.Count);
        Assert.Equal(100, empty[0].Timestamp);

        var webhook = new ParsedWebhook();
        string wrong = CoexistencePayloads.HistoryChunk("PNco", 0, 1, 10, threads: []).Replace("\"progress\":10", "\"progress\":\"ten\"", StringComparison.Ordinal);
        Assert.Equal(WebhookRejectionReason.WrongShape, WebhookPayloadReader.Parse(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(wrong)), webhook));
    }
}
