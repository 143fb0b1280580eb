using System.Buffers;
using System.Net;
using System.Text;
using System.Text.Json;
using Memo.Ingest.Auth;
using Memo.Ingest.Outbox;
using Memo.Ingest.TestSupport;
using Memo.Ingest.Webhooks;
using Memo.Ingest.Webhooks.Parsing;
using Xunit;

namespace Memo.Ingest.Tests;

/// <summary>The outbox's pure parts: what a reply may be, how Meta's answers are read, the pacing, the scopes.</summary>
public sealed class OutboxUnitTests
{
    [Theory]
    [InlineData("""{"to":"+1 555 0100","type":"text","text":{"body":"hi"},"context":{"message_id":"wamid.X"}}""", "text", "hi", "wamid.X")]
    [InlineData("""{"messaging_product":"whatsapp","to":"1555","type":"image","image":{"link":"https://example.com/a.png","caption":"look"}}""", "image", "look", null)]
    [InlineData("""{"to":"1555","type":"template","template":{"name":"order_update","language":{"code":"en"}}}""", "template", "order_update", null)]
    [InlineData("""{"to":"1555","type":"reaction","reaction":{"message_id":"wamid.Y","emoji":"👍"}}""", "reaction", "👍", null)]
    [InlineData("""{"to":"1555","type":"interactive","interactive":{"type":"button","body":{"text":"pick"}}}""", "interactive", "pick", null)]
    public void ValidReplies_AreReadForTheStream(string body, string type, string? text, string? context)
    {
        OutboxRequest? request = OutboxRequest.TryParse(Encoding.UTF8.GetBytes(body), out string? error);
        Assert.Null(error);
        Assert.NotNull(request);
        Assert.Equal(type, request.Type);
        Assert.Equal(text, request.Text);
        Assert.Equal(context, request.ContextId);
    }

    [Theory]
    [InlineData("""{"to":"1555","type":"video","video":{"caption":"no media"}}""")]
    [InlineData("""{"to":"1555","type":"reaction","reaction":{"emoji":"👍"}}""")]
    [InlineData("""{"to":"1555","type":"text","text":{"body":"x"},"recipient_type":"group"}""")]
    [InlineData("""{"to":"1555","type":"text","text":{"body":"x"},"messaging_product":7}""")]
    [InlineData("""{"to":"","type":"text","text":{"body":"x"}}""")]
    [InlineData("""{"to":"1555","type":"contacts","contacts":{}}""")]
    public void InvalidReplies_AreRefusedWithAReason(string body)
    {
        Assert.Null(OutboxRequest.TryParse(Encoding.UTF8.GetBytes(body), out string? error));
        Assert.False(string.IsNullOrEmpty(error));
    }

    [Fact]
    public void TheSendBody_CarriesTheProductAndTheRowsKey_AndEverythingTheClientSent()
    {
        var output = new ArrayBufferWriter<byte>();
        OutboxRequest.WriteSendBody("""{"messaging_product":"whatsapp","to":"1555","type":"text","text":{"body":"hi"}}"""u8.ToArray(), "memo.outbox.7", output);
        using JsonDocument sent = JsonDocument.Parse(output.WrittenMemory);
        Assert.Equal("whatsapp", sent.RootElement.GetProperty("messaging_product").GetString());
        Assert.Equal("memo.outbox.7", sent.RootElement.GetProperty("biz_opaque_callback_data").GetString());
        Assert.Equal("hi", sent.RootElement.GetProperty("text").GetProperty("body").GetString());
        Assert.Equal(5, sent.RootElement.EnumerateObject().Count());
    }

    [Theory]
    [InlineData(HttpStatusCode.OK, """{"messages":[{"id":"wamid.A"}]}""", "accepted", null)]
    [InlineData(HttpStatusCode.BadRequest, """{"error":{"code":131047,"message":"Re-engagement message"}}""", "failed", 131047)]
    [InlineData(HttpStatusCode.Unauthorized, """{"error":{"code":190,"message":"expired"}}""", "failed", 190)]
    [InlineData(HttpStatusCode.BadRequest, """{"error":{"code":132001,"message":"Template name does not exist"}}""", "failed", 132001)]
    [InlineData(HttpStatusCode.BadRequest, """{"error":{"code":130429,"message":"Rate limit hit"}}""", "throttled_account", 130429)]
    [InlineData(HttpStatusCode.BadRequest, """{"error":{"code":131056,"message":"pair rate"}}""", "throttled_pair", 131056)]
    [InlineData(HttpStatusCode.InternalServerError, """{"error":{"code":131000,"message":"Something went wrong"}}""", "retry", 131000)]
    [InlineData(HttpStatusCode.BadGateway, "<html>bad gateway</html>", "retry", 502)]
    [InlineData(HttpStatusCode.TooManyRequests, "", "throttled_account", 429)]
    public void MetasAnswers_AreClassifiedByTheirErrorCode(HttpStatusCode status, string body, string kind, int? code)
    {
        SendOutcome outcome = GraphApiClient.Classify(status, Encoding.UTF8.GetBytes(body));
        Assert.Equal(kind, SendOutcome.Name(outcome.Kind));
        Assert.Equal(code, outcome.ErrorCode);
        if (outcome.Kind == SendOutcomeKind.Accepted)
        {
            Assert.Equal("wamid.A", outcome.Wamid);
        }
        else
        {
            // The error kept with the row is an object with its code, whatever the answer looked like.
            using JsonDocument error = JsonDocument.Parse(outcome.Error);
            Assert.Equal(code, error.RootElement.GetProperty("code").GetInt32());
        }
    }

    [Fact]
    public void ThePacer_SpacesSendsByTheInterval_AndAllowsABurstThenOnePerInterval()
    {
        var pacer = new SendPacer<string>();
        const long interval = 100;
        // Burst 1: every send one interval after the previous one.
        long slot = 0;
        for (int i = 0; i < 5; i++)
        {
            slot = pacer.EarliestSlot("a", 0, interval, 1);
            Assert.Equal(i * interval, slot);
            pacer.Book("a", slot, interval);
        }

        // Burst 3: three at once, then one per interval.
        long[] slots = new long[6];
        for (int i = 0; i < slots.Length; i++)
        {
            slots[i] = pacer.EarliestSlot("b", 1000, interval, 3);
            pacer.Book("b", slots[i], interval);
        }

        Assert.Equal([1000, 1000, 1000, 1100, 1200, 1300], slots);

        // Meta said "too many": nothing before the hold ends, then a fresh burst is not granted at once.
        pacer.Hold("b", 5000, interval, 3);
        Assert.Equal(5000, pacer.EarliestSlot("b", 2000, interval, 3));
        pacer.Trim(10_000);
        Assert.Equal(10_000, pacer.EarliestSlot("b", 10_000, interval, 3));
    }

    [Theory]
    [InlineData(null, "read")]
    [InlineData("read", "read")]
    [InlineData("send", "send")]
    [InlineData("read send", "read send")]
    [InlineData("send read", "read send")]
    public void Scopes_AreReadFromTheClaim_AndATokenWithoutOneOnlyReads(string? claim, string scope) =>
        Assert.Equal(scope, AccessScopes.Format(AccessScopes.Parse(claim)));

    [Fact]
    public void AnUnknownScope_GrantsNothing() => Assert.Equal(AccessScope.None, AccessScopes.Parse("admin"));

    [Fact]
    public void AStatusCarryingTheOutboxKey_LandsOnTheReplysRow_WithMetasWamidBesideIt()
    {
        string body = ReplyClient.Status("PNo", 42, "wamid.META", "delivered", 1700000000, "1555");
        var webhook = new ParsedWebhook();
        Assert.Equal(WebhookRejectionReason.None, WebhookPayloadReader.Parse(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(body)), webhook));
        StagedRecord status = Assert.Single(webhook.Records.ToArray());
        Assert.Equal("memo.outbox.42", RecordProjection.Text(webhook, status.Id));
        Assert.Equal("wamid.META", RecordProjection.Text(webhook, status.Body));

        // Anyone else's callback data changes nothing.
        string foreign = body.Replace("memo.outbox.42", "their-own-data", StringComparison.Ordinal);
        var other = new ParsedWebhook();
        Assert.Equal(WebhookRejectionReason.None, WebhookPayloadReader.Parse(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(foreign)), other));
        Assert.Equal("wamid.META", RecordProjection.Text(other, Assert.Single(other.Records.ToArray()).Id));
    }
}
