using System.Buffers;
using System.Text;
using System.Text.Json;
using Memo.Ingest.TestSupport;
using Memo.Ingest.Webhooks;
using Memo.Ingest.Webhooks.Parsing;
using Xunit;

namespace Memo.Ingest.Tests;

public sealed class WebhookPayloadReaderTests
{
    private static ParsedWebhook ParseOk(ReadOnlySequence<byte> body)
    {
        var webhook = new ParsedWebhook();
        WebhookRejectionReason reason = WebhookPayloadReader.Parse(body, webhook);
        Assert.Equal(WebhookRejectionReason.None, reason);
        return webhook;
    }

    private static ParsedWebhook ParseOk(string body) => ParseOk(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(body)));

    public static TheoryData<string> Corpus()
    {
        var messages = WebhookPayloads.MessageOfEveryType("wamid.c", "4915111", 1700000000).Select(static m => m.Json).ToList();
        return new TheoryData<string>
        {
            WebhookPayloads.Envelope("PN1", messages: messages.Take(6), contacts: [WebhookPayloads.Contact("4915111", "J\\u00f6rg")]),
            WebhookPayloads.Envelope("PN1", messages: messages.Skip(6)),
            WebhookPayloads.Envelope("PN1", statuses:
            [
                WebhookPayloads.Status("wamid.o1", "sent", 1700000001, "4915111", withPricing: true),
                WebhookPayloads.Status("wamid.o1", "failed", 1700000002, "4915111", withErrors: true),
            ]),
            KeysOutOfOrder,
            OtherField,
            CoexistenceParsingTests.MixedFields,
        };
    }

    private const string KeysOutOfOrder = """
        {"entry":[{"changes":[{"value":{"messages":[{"type":"text","text":{"body":"late meta"},"timestamp":"1700000005","id":"wamid.k1","from":"4915"}],"metadata":{"phone_number_id":"PN9","display_phone_number":"1555"},"messaging_product":"whatsapp"},"field":"messages"}],"id":"WABA9","time":1700000006}],"object":"whatsapp_business_account","extra":{"a":[1,2,{"b":null}]}}
        """;

    private const string OtherField = """
        {"object":"whatsapp_business_account","entry":[{"id":"WABA1","time":1700000000,"changes":[{"value":{"event":"APPROVED","message_template_id":123,"message_template_name":"hello","reason":null},"field":"message_template_status_update"}]}]}
        """;

    [Theory]
    [MemberData(nameof(Corpus))]
    public void Parse_EverySegmentation_MatchesWhole(string payload)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(payload);
        List<string> expected = RecordProjection.DescribeAll(ParseOk(new ReadOnlySequence<byte>(bytes)));
        Assert.NotEmpty(expected);
        foreach ((string name, ReadOnlySequence<byte> sequence) in Segments.Variants(bytes))
        {
            var webhook = new ParsedWebhook();
            Assert.True(WebhookPayloadReader.Parse(sequence, webhook) == WebhookRejectionReason.None, name);
            Assert.True(expected.SequenceEqual(RecordProjection.DescribeAll(webhook)), name);
        }
    }

    [Fact]
    public void Parse_EveryMessageType_ExtractsColumnsAndKeepsRawObject()
    {
        var corpus = WebhookPayloads.MessageOfEveryType("wamid.t", "4915111", 1700000000);
        ParsedWebhook webhook = ParseOk(WebhookPayloads.Envelope("PN1", messages: corpus.Select(static m => m.Json)));
        Assert.Equal(corpus.Count, webhook.Count);
        for (int i = 0; i < corpus.Count; i++)
        {
            StagedRecord record = webhook[i];
            Assert.Equal(RecordKind.Message, record.Kind);
            Assert.Equal("PN1", RecordProjection.Text(webhook, record.Account));
            Assert.Equal("102290129340398", RecordProjection.Text(webhook, record.WabaId));
            Assert.Equal("4915111", RecordProjection.Text(webhook, record.WaId));
            Assert.Equal(corpus[i].Type, RecordProjection.Text(webhook, record.Type));
            Assert.Equal(1700000000 + i, record.Timestamp);
            Assert.Equal(corpus[i].ExpectedText, record.Body.IsNull ? null : RecordProjection.Text(webhook, record.Body));
            // The raw object is kept byte for byte, escapes included.
            Assert.Equal(corpus[i].Json, RecordProjection.Text(webhook, record.Payload));
        }

        Assert.Equal("wamid.ctx-1", RecordProjection.Text(webhook, webhook[8].ContextId));
    }

    [Fact]
    public void Parse_EscapedText_DecodedExactly()
    {
        ParsedWebhook webhook = ParseOk(WebhookPayloads.Envelope("PN1", messages: [WebhookPayloads.MessageOfEveryType("w", "1", 1)[0].Json]));
        Assert.Equal("Hallo Jörg 😀 שלום \"quoted\" back\\slash\nnew line", RecordProjection.Text(webhook, webhook[0].Body));
    }

    [Fact]
    public void Parse_StatusesAndContacts_Extracted()
    {
        ParsedWebhook webhook = ParseOk(WebhookPayloads.Envelope("PN1",
            contacts: [WebhookPayloads.Contact("4915111", "Ada")],
            statuses: [WebhookPayloads.Status("wamid.o1", "failed", 1700000002, "4915111", withErrors: true, withPricing: true)]));
        Assert.Equal(2, webhook.Count);
        Assert.Equal(RecordKind.Contact, webhook[0].Kind);
        Assert.Equal("Ada", RecordProjection.Text(webhook, webhook[0].Body));
        Assert.Equal(RecordKind.Status, webhook[1].Kind);
        Assert.Equal("failed", RecordProjection.Text(webhook, webhook[1].Type));
        Assert.Equal("4915111", RecordProjection.Text(webhook, webhook[1].WaId));
        Assert.Equal(131047, JsonDocument.Parse(RecordProjection.Text(webhook, webhook[1].Errors)).RootElement[0].GetProperty("code").GetInt32());
        Assert.Contains("\"pricing\"", RecordProjection.Text(webhook, webhook[1].Payload), StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_KeysInAnyOrder_MetadataAndEntryIdStampedAfterwards()
    {
        ParsedWebhook webhook = ParseOk(KeysOutOfOrder);
        StagedRecord message = Assert.Single(webhook.Records.ToArray());
        Assert.Equal("PN9", RecordProjection.Text(webhook, message.Account));
        Assert.Equal("WABA9", RecordProjection.Text(webhook, message.WabaId));
        Assert.Equal("late meta", RecordProjection.Text(webhook, message.Body));
    }

    [Fact]
    public void Parse_ValueBeforeField_IsParsedOnceFieldKnown()
    {
        ParsedWebhook webhook = ParseOk("""
            {"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"value":{"metadata":{"phone_number_id":"PN2"},"messages":[{"id":"wamid.v","from":"1","timestamp":"5","type":"text","text":{"body":"x"}}]},"field":"messages"},{"value":{"x":1},"field":"account_update"}]}]}
            """);
        Assert.Equal(2, webhook.Count);
        Assert.Equal(RecordKind.Message, webhook[0].Kind);
        Assert.Equal("wamid.v", RecordProjection.Text(webhook, webhook[0].Id));
        Assert.Equal(RecordKind.AccountUpdate, webhook[1].Kind);
        Assert.Equal("account_update", RecordProjection.Text(webhook, webhook[1].Type));
        Assert.Equal("""{"x":1}""", RecordProjection.Text(webhook, webhook[1].Payload));
    }

    [Fact]
    public void Parse_OtherField_KeptWholeNotRejected()
    {
        ParsedWebhook webhook = ParseOk(OtherField);
        StagedRecord update = Assert.Single(webhook.Records.ToArray());
        Assert.Equal(RecordKind.AccountUpdate, update.Kind);
        Assert.Equal("message_template_status_update", RecordProjection.Text(webhook, update.Type));
        Assert.Equal("WABA1", RecordProjection.Text(webhook, update.WabaId));
        Assert.StartsWith("""{"event":"APPROVED""", RecordProjection.Text(webhook, update.Payload), StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_SeveralEntriesAndChanges_AllRecordsKept()
    {
        string Change(string pn, string id) => $$$"""{"field":"messages","value":{"metadata":{"phone_number_id":"{{{pn}}}"},"messages":[{"id":"{{{id}}}","from":"1","timestamp":"1","type":"text","text":{"body":"b"}}]}}""";
        ParsedWebhook webhook = ParseOk($$"""
            {"object":"whatsapp_business_account","entry":[{"id":"W1","changes":[{{Change("PN1", "a")}},{{Change("PN2", "b")}}]},{"id":"W2","changes":[{{Change("PN3", "c")}}]}]}
            """);
        Assert.Equal(["PN1", "PN2", "PN3"], Enumerable.Range(0, 3).Select(i => RecordProjection.Text(webhook, webhook[i].Account)));
        Assert.Equal(["W1", "W1", "W2"], Enumerable.Range(0, 3).Select(i => RecordProjection.Text(webhook, webhook[i].WabaId)));
    }

    public static TheoryData<string, WebhookRejectionReason> BadBodies() => new()
    {
        { "", WebhookRejectionReason.MalformedJson },
        { "{", WebhookRejectionReason.MalformedJson },
        { """{"object":"whatsapp_business_account","entry":[]}garbage""", WebhookRejectionReason.MalformedJson },
        { """{"object":"whatsapp_business_account","entry":[]}{}""", WebhookRejectionReason.MalformedJson },
        { "\uFEFF{\"object\":\"whatsapp_business_account\",\"entry\":[]}", WebhookRejectionReason.MalformedJson },
        { """{"object":"whatsapp_business_account","entry":[]} // c""", WebhookRejectionReason.MalformedJson },
        { """{"object":"whatsapp_business_account","entry":[NaN]}""", WebhookRejectionReason.MalformedJson },
        { """{"object":"whatsapp_business_account","entry":[],}""", WebhookRejectionReason.MalformedJson },
        { "[]", WebhookRejectionReason.WrongShape },
        { "\"text\"", WebhookRejectionReason.WrongShape },
        { """{"object":"page","entry":[]}""", WebhookRejectionReason.UnexpectedObject },
        { """{"entry":[]}""", WebhookRejectionReason.MissingField },
        { """{"object":"whatsapp_business_account"}""", WebhookRejectionReason.MissingField },
        { """{"object":"whatsapp_business_account","entry":{}}""", WebhookRejectionReason.WrongShape },
        { """{"object":"whatsapp_business_account","object":"whatsapp_business_account","entry":[]}""", WebhookRejectionReason.DuplicateKey },
        { """{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages"}]}]}""", WebhookRejectionReason.MissingField },
        { """{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[{"id":"x","timestamp":"1"}]}}]}]}""", WebhookRejectionReason.MissingField },
        { """{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"P"},"messages":[{"timestamp":"1"}]}}]}]}""", WebhookRejectionReason.MissingField },
        { """{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"P"},"messages":[{"id":"x","timestamp":"soon"}]}}]}]}""", WebhookRejectionReason.WrongShape },
        { """{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"P"},"messages":[{"id":7,"timestamp":"1"}]}}]}]}""", WebhookRejectionReason.WrongShape },
        { """{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"P"},"messages":[{"id":"x","id":"y","timestamp":"1"}]}}]}]}""", WebhookRejectionReason.DuplicateKey },
        { """{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"P"},"statuses":[{"id":"x","timestamp":"1"}]}}]}]}""", WebhookRejectionReason.MissingField },
        { """{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"P"},"messages":[{"id":"x","timestamp":"1","text":{"body":"\ud800"}}]}}]}]}""", WebhookRejectionReason.InvalidStringEscape },
        { """{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"P"},"messages":[{"id":"x","timestamp":"1","text":{"body":"\ud800\u0000"}}]}}]}]}""", WebhookRejectionReason.InvalidStringEscape },
        { $$$"""{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"P"},"messages":[{"id":"{{{new string('w', 257)}}}","timestamp":"1"}]}}]}]}""", WebhookRejectionReason.KeyTooLong },
        { $$$"""{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"{{{new string('1', 257)}}}"},"statuses":[{"id":"x","status":"sent","timestamp":"1"}]}}]}]}""", WebhookRejectionReason.KeyTooLong },
        { $$$"""{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"P"},"statuses":[{"id":"x","status":"{{{new string('s', 257)}}}","timestamp":"1"}]}}]}]}""", WebhookRejectionReason.KeyTooLong },
        { $$$"""{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"P"},"contacts":[{"wa_id":"{{{new string('4', 257)}}}"}]}}]}]}""", WebhookRejectionReason.KeyTooLong },
        { $$$"""{"object":"whatsapp_business_account","entry":[{"id":"{{{new string('9', 257)}}}","changes":[]}]}""", WebhookRejectionReason.KeyTooLong },
        { $$$"""{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"{{{new string('f', 257)}}}","value":{}}]}]}""", WebhookRejectionReason.KeyTooLong },
        { """{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"x","value":{"unknown":"\udc00"}}]}]}""", WebhookRejectionReason.InvalidStringEscape },
        { """{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"P"},"contacts":[{"profile":{"name":"n"}}]}}]}]}""", WebhookRejectionReason.MissingField },
        { """{"object":"whatsapp_business_account","entry":[],"deep":""" + new string('[', 10_000) + new string(']', 10_000) + "}", WebhookRejectionReason.MalformedJson },
    };

    [Theory]
    [MemberData(nameof(BadBodies))]
    public void Parse_BadBody_RejectedWithReasonAndNoRecords(string body, WebhookRejectionReason expected)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(body);
        foreach ((string name, ReadOnlySequence<byte> sequence) in Segments.Variants(bytes).Where(static (_, i) => i < 40 || i % 97 == 0))
        {
            var webhook = new ParsedWebhook();
            Assert.True(expected == WebhookPayloadReader.Parse(sequence, webhook), $"{name}: expected {expected}");
            Assert.Equal(0, webhook.Count);
        }
    }

    [Fact]
    public void Parse_InvalidUtf8_Rejected_InEveryVariant()
    {
        byte[] prefix = Encoding.UTF8.GetBytes("""{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"x","value":{"k":" """);
        byte[] bytes = [.. prefix, 0xC3, 0x28, .. "\"}}]}]}"u8.ToArray()];
        foreach ((string name, ReadOnlySequence<byte> sequence) in Segments.Variants(bytes))
        {
            Assert.True(WebhookRejectionReason.InvalidUtf8 == WebhookPayloadReader.Parse(sequence, new ParsedWebhook()), name);
        }
    }

    [Fact]
    public void Parse_MultiByteCharacterSplitAcrossSegments_Accepted()
    {
        byte[] bytes = Encoding.UTF8.GetBytes(WebhookPayloads.Envelope("PN1", messages: [WebhookPayloads.TextMessage("w1", "1", 1, "😀ü€")]));
        foreach ((string name, ReadOnlySequence<byte> sequence) in Segments.Variants(bytes))
        {
            var webhook = new ParsedWebhook();
            Assert.True(WebhookPayloadReader.Parse(sequence, webhook) == WebhookRejectionReason.None, name);
            Assert.Equal("😀ü€", RecordProjection.Text(webhook, webhook[0].Body));
        }
    }

    [Fact]
    public void Parse_NulEscape_ColumnGetsReplacementCharacterAndPayloadKeepsEscape()
    {
        string body = WebhookPayloads.Envelope("PN1", messages: [WebhookPayloads.TextMessage("w1", "1", 1, "a\\u0000b\\u0000")],
            contacts: [WebhookPayloads.Contact("1", "\\u0000n")]);
        foreach ((string name, ReadOnlySequence<byte> sequence) in Segments.Variants(Encoding.UTF8.GetBytes(body)))
        {
            var webhook = new ParsedWebhook();
            Assert.True(WebhookPayloadReader.Parse(sequence, webhook) == WebhookRejectionReason.None, name);
            StagedRecord message = webhook.Records.ToArray().Single(static r => r.Kind == RecordKind.Message);
            Assert.Equal("a\uFFFDb\uFFFD", RecordProjection.Text(webhook, message.Body));
            Assert.Contains("a\\u0000b\\u0000", RecordProjection.Text(webhook, message.Payload), StringComparison.Ordinal);
            StagedRecord contact = webhook.Records.ToArray().Single(static r => r.Kind == RecordKind.Contact);
            Assert.Equal("\uFFFDn", RecordProjection.Text(webhook, contact.Body));
        }
    }

    [Fact]
    public void Parse_KeyOfExactlyTheLimit_Accepted()
    {
        string wamid = new('w', WebhookPayloadReader.MaxKeyBytes);
        ParsedWebhook webhook = ParseOk(WebhookPayloads.Envelope("PN1", messages: [WebhookPayloads.TextMessage(wamid, "1", 1, "x")]));
        Assert.Equal(wamid, RecordProjection.Text(webhook, webhook[0].Id));
    }

    [Fact]
    public void Parse_ReusedPooledInstance_StartsClean()
    {
        var webhook = new ParsedWebhook();
        Assert.Equal(WebhookRejectionReason.None, WebhookPayloadReader.Parse(Encoding.UTF8.GetBytes(KeysOutOfOrder), webhook));
        Assert.True(webhook.TryReset());
        Assert.Equal(WebhookRejectionReason.None, WebhookPayloadReader.Parse(Encoding.UTF8.GetBytes(OtherField), webhook));
        Assert.Single(webhook.Records.ToArray());
        Assert.Equal("message_template_status_update", RecordProjection.Text(webhook, webhook[0].Type));
    }

    /// <summary>Every body the fuzzer ever broke the gateway with (tests/corpus/fuzz) parses to a verdict, whole and
    /// and in 97-byte segments, and never throws.</summary>
    [Fact]
    public void FuzzRegressions_ParseToAVerdictWithoutThrowing()
    {
        string directory = Path.Combine(RepositoryScript.Root, "tests", "corpus", "fuzz");
        var thrown = new List<string>();
        foreach (string file in Directory.EnumerateFiles(directory, "*.bin"))
        {
            byte[] body = File.ReadAllBytes(file);
            try
            {
                WebhookPayloadReader.Parse(body, new ParsedWebhook());
                WebhookPayloadReader.Parse(Segments.Create(body.Chunk(97).ToArray()), new ParsedWebhook());
            }
            catch (Exception e)
            {
                thrown.Add($"{Path.GetFileName(file)}: {e.GetType().Name}: {e.Message}");
            }
        }

        Assert.True(thrown.Count == 0, string.Join('\n', thrown.Take(20)));
    }
}
