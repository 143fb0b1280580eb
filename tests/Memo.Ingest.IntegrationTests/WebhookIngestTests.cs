using System.Net;
using System.Text;
using System.Text.Json;
using Memo.Ingest.TestSupport;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

[Collection(PostgresCollection.Name)]
public sealed class WebhookIngestTests(PostgresFixture postgres) : IAsyncLifetime
{
    private GatewayHost _gateway = null!;
    private string _connectionString = null!;

    public async Task InitializeAsync()
    {
        _connectionString = await postgres.Server.CreateDatabaseAsync("ingest");
        _gateway = await GatewayHost.StartAsync(_connectionString, "--Memo:Ingest:MaxBodyBytes=200000");
    }

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    private static string NewAccount() => "PN" + Guid.NewGuid().ToString("N")[..12];

    [Fact]
    public async Task Get_ValidVerifyToken_EchoesChallengeAsText()
    {
        using HttpResponseMessage response = await _gateway.Client.GetAsync(
            $"/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={GatewayHost.VerifyToken}&hub.challenge=1158201444");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain", response.Content.Headers.ContentType!.MediaType);
        Assert.Equal("1158201444", await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1")]
    [InlineData("hub.mode=unsubscribe&hub.verify_token=test-verify-token&hub.challenge=1")]
    [InlineData("hub.mode=subscribe&hub.challenge=1")]
    [InlineData("hub.mode=subscribe&hub.verify_token=test-verify-token")]
    public async Task Get_BadHandshake_Returns403(string query)
    {
        using HttpResponseMessage response = await _gateway.Client.GetAsync("/webhooks/whatsapp?" + query);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }

    [Fact]
    public async Task Post_EveryMessageType_SyncApiReturnsEachFieldExactly()
    {
        string account = NewAccount();
        var corpus = WebhookPayloads.MessageOfEveryType("wamid.every", "4915111", 1700000000);
        string body = WebhookPayloads.Envelope(account, messages: corpus.Select(static m => m.Json), contacts: [WebhookPayloads.Contact("4915111", "J\\u00f6rg \\ud83d\\ude00")]);
        using HttpResponseMessage response = await _gateway.PostWebhookAsync(body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        List<JsonElement> items = await SyncClient.GetAllAsync(_gateway.Client, account, "messages");
        Assert.Equal(corpus.Count, items.Count);
        for (int i = 0; i < corpus.Count; i++)
        {
            JsonElement item = items.Single(x => x.GetProperty("wamid").GetString() == JsonDocument.Parse(corpus[i].Json).RootElement.GetProperty("id").GetString());
            Assert.Equal("inbound", item.GetProperty("direction").GetString());
            Assert.Equal("4915111", item.GetProperty("from").GetString());
            Assert.Equal(1700000000 + i, item.GetProperty("timestamp").GetInt64());
            Assert.Equal(corpus[i].Type, item.GetProperty("type").GetString());
            Assert.Equal(corpus[i].ExpectedText, item.GetProperty("text").ValueKind == JsonValueKind.Null ? null : item.GetProperty("text").GetString());
            // The raw payload round-trips to the same JSON value as was sent.
            Assert.True(JsonElement.DeepEquals(JsonDocument.Parse(corpus[i].Json).RootElement, item.GetProperty("payload")), corpus[i].Type);
        }

        Assert.Equal("wamid.ctx-1", items.Single(x => x.GetProperty("wamid").GetString() == "wamid.every-button-reply").GetProperty("context_id").GetString());

        List<JsonElement> contacts = await SyncClient.GetAllAsync(_gateway.Client, account, "contacts");
        Assert.Equal("Jörg 😀", Assert.Single(contacts).GetProperty("profile_name").GetString());
        JsonElement conversation = Assert.Single(await SyncClient.GetAllAsync(_gateway.Client, account, "conversations"));
        Assert.Equal(corpus.Count, conversation.GetProperty("message_count").GetInt64());
        Assert.Equal("Jörg 😀", conversation.GetProperty("profile_name").GetString());
        Assert.Equal("wamid.every-referral", conversation.GetProperty("last_message").GetProperty("wamid").GetString());
    }

    /// <summary>
    /// A webhook of more records than <see cref="Storage.InboxAppender.CopyFromRows"/> is appended by binary COPY, whose
    /// rows the gateway encodes itself (<see cref="Storage.InboxRow.WriteBinary"/>): every column must come back as sent
    /// (numbers, texts with escapes and a NUL, the raw JSON byte for byte, a status's errors, nulls).
    /// </summary>
    [Fact]
    public async Task Post_WebhookBigEnoughForCopy_EveryColumnStoredAsSent()
    {
        string account = NewAccount();
        var corpus = Enumerable.Range(0, 4).SelectMany(k => WebhookPayloads.MessageOfEveryType($"wamid.copy{k}", "4915111", 1700000000 + (100 * k))).ToList();
        string nul = WebhookPayloads.TextMessage("wamid.copy-nul", "4915222", 1700000999, "a\\u0000b");
        string status = WebhookPayloads.Status("wamid.copy0-text", "failed", 1700001000, "4915111", withErrors: true);
        string body = WebhookPayloads.Envelope(account, messages: [.. corpus.Select(static m => m.Json), nul], statuses: [status],
            contacts: [WebhookPayloads.Contact("4915111", "J\\u00f6rg"), WebhookPayloads.Contact("4915222", "N\\u0000")]);
        Assert.True(corpus.Count + 4 >= Storage.InboxAppender.CopyFromRows);

        using HttpResponseMessage response = await _gateway.PostWebhookAsync(body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        List<JsonElement> items = await SyncClient.GetAllAsync(_gateway.Client, account, "messages");
        Assert.Equal(corpus.Count + 1, items.Count);
        for (int i = 0; i < corpus.Count; i++)
        {
            string wamid = JsonDocument.Parse(corpus[i].Json).RootElement.GetProperty("id").GetString()!;
            JsonElement item = items.Single(x => x.GetProperty("wamid").GetString() == wamid);
            Assert.Equal("4915111", item.GetProperty("from").GetString());
            Assert.Equal(JsonDocument.Parse(corpus[i].Json).RootElement.GetProperty("timestamp").GetString(), item.GetProperty("timestamp").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.Equal(corpus[i].Type, item.GetProperty("type").GetString());
            Assert.Equal(corpus[i].ExpectedText, item.GetProperty("text").ValueKind == JsonValueKind.Null ? null : item.GetProperty("text").GetString());
            Assert.Equal(Encoding.UTF8.GetBytes(corpus[i].Json), await PayloadAsync(wamid));
        }

        JsonElement failed = items.Single(static x => x.GetProperty("wamid").GetString() == "wamid.copy0-text");
        Assert.Equal("failed", failed.GetProperty("status").GetString());
        Assert.Equal(131047, failed.GetProperty("status_errors")[0].GetProperty("code").GetInt32());
        Assert.Equal("a\uFFFDb", items.Single(static x => x.GetProperty("wamid").GetString() == "wamid.copy-nul").GetProperty("text").GetString());
        Assert.Equal(Encoding.UTF8.GetBytes(nul), await PayloadAsync("wamid.copy-nul"));
        Dictionary<string, string?> names = (await SyncClient.GetAllAsync(_gateway.Client, account, "contacts"))
            .ToDictionary(static c => c.GetProperty("wa_id").GetString()!, static c => c.GetProperty("profile_name").GetString());
        Assert.Equal(new Dictionary<string, string?> { ["4915111"] = "Jörg", ["4915222"] = "N\uFFFD" }, names);
    }

    private async Task<byte[]> PayloadAsync(string wamid)
    {
        await using var connection = new Npgsql.NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand("SELECT payload FROM messages WHERE wamid = $1", connection);
        command.Parameters.Add(new Npgsql.NpgsqlParameter<string> { TypedValue = wamid });
        return (byte[])(await command.ExecuteScalarAsync())!;
    }

    [Fact]
    public async Task Post_SeqOrder_ContactThenMessageThenConversation()
    {
        string account = NewAccount();
        string body = WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage("wamid.o1", "49", 1, "hi")], contacts: [WebhookPayloads.Contact("49", "A")]);
        Assert.Equal(HttpStatusCode.OK, (await _gateway.PostWebhookAsync(body)).StatusCode);
        Assert.Equal(1, (await SyncClient.GetAllAsync(_gateway.Client, account, "contacts"))[0].GetProperty("seq").GetInt64());
        Assert.Equal(2, (await SyncClient.GetAllAsync(_gateway.Client, account, "messages"))[0].GetProperty("seq").GetInt64());
        Assert.Equal(3, (await SyncClient.GetAllAsync(_gateway.Client, account, "conversations"))[0].GetProperty("seq").GetInt64());
    }

    [Fact]
    public async Task Post_SamePayloadTwiceAndDuplicateInsidePayload_StoredOnce()
    {
        string account = NewAccount();
        string message = WebhookPayloads.TextMessage("wamid.dup", "4915111", 1700000000, "once");
        string body = WebhookPayloads.Envelope(account, messages: [message, message],
            statuses: [WebhookPayloads.Status("wamid.out", "sent", 1700000001, "4915111"), WebhookPayloads.Status("wamid.out", "sent", 1700000001, "4915111")]);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await _gateway.PostWebhookAsync(body)).StatusCode);
        }

        // Re-batched: the same message inside a different payload.
        string rebatched = WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage("wamid.other", "4915111", 1700000002, "x"), message]);
        Assert.Equal(HttpStatusCode.OK, (await _gateway.PostWebhookAsync(rebatched)).StatusCode);

        Assert.Equal(1, await Database.CountAsync(_connectionString, "SELECT count(*) FROM account_events WHERE account = $1 AND kind = 1 AND key = 'wamid.dup'", account));
        Assert.Equal(1, await Database.CountAsync(_connectionString, "SELECT count(*) FROM message_statuses WHERE account = $1", account));
        JsonElement conversation = Assert.Single(await SyncClient.GetAllAsync(_gateway.Client, account, "conversations"));
        Assert.Equal(2, conversation.GetProperty("message_count").GetInt64());
        // Duplicates take no seq: message, status, conversation, then the other message and its conversation update.
        Assert.Equal(5, (await SyncClient.GetPageAsync(_gateway.Client, account, "messages", 0)).LatestSeq);
    }

    [Fact]
    public async Task Post_StatusesOutOfOrder_MessageKeepsFurthestAndHistoryKeepsAll()
    {
        string account = NewAccount();
        string[] arrivals = ["read", "sent", "delivered", "read"];
        long[] times = [1700000030, 1700000010, 1700000020, 1700000030];
        for (int i = 0; i < arrivals.Length; i++)
        {
            string body = WebhookPayloads.Envelope(account, statuses: [WebhookPayloads.Status("wamid.out1", arrivals[i], times[i], "4915111", withPricing: true)]);
            Assert.Equal(HttpStatusCode.OK, (await _gateway.PostWebhookAsync(body)).StatusCode);
        }

        JsonElement message = Assert.Single(await SyncClient.GetAllAsync(_gateway.Client, account, "messages"));
        Assert.Equal("outbound", message.GetProperty("direction").GetString());
        Assert.Equal("4915111", message.GetProperty("to").GetString());
        Assert.Equal("read", message.GetProperty("status").GetString());
        Assert.Equal(1700000030, message.GetProperty("status_timestamp").GetInt64());
        Assert.Equal(JsonValueKind.Null, message.GetProperty("payload").ValueKind);
        Assert.Equal(3, await Database.CountAsync(_connectionString, "SELECT count(*) FROM message_statuses WHERE account = $1", account));

        // failed is terminal and keeps its errors, even when a delivered arrives afterwards.
        await _gateway.PostWebhookAsync(WebhookPayloads.Envelope(account, statuses: [WebhookPayloads.Status("wamid.out2", "failed", 1700000040, "4915111", withErrors: true)]));
        await _gateway.PostWebhookAsync(WebhookPayloads.Envelope(account, statuses: [WebhookPayloads.Status("wamid.out2", "delivered", 1700000041, "4915111")]));
        JsonElement failed = (await SyncClient.GetAllAsync(_gateway.Client, account, "messages")).Single(x => x.GetProperty("wamid").GetString() == "wamid.out2");
        Assert.Equal("failed", failed.GetProperty("status").GetString());
        Assert.Equal(131047, failed.GetProperty("status_errors")[0].GetProperty("code").GetInt32());
    }

    [Fact]
    public async Task Post_StatusesOutOfOrderInOneWebhook_MessageKeepsFurthestOfTheRound()
    {
        // One webhook, so one sequencer round: the round itself must pick each message's furthest status.
        string account = NewAccount();
        string body = WebhookPayloads.Envelope(account, statuses:
        [
            WebhookPayloads.Status("wamid.round1", "read", 1700000030, "4915111"),
            WebhookPayloads.Status("wamid.round1", "sent", 1700000010, "4915111"),
            WebhookPayloads.Status("wamid.round1", "delivered", 1700000020, "4915111"),
            WebhookPayloads.Status("wamid.round2", "failed", 1700000040, "4915222", withErrors: true),
            WebhookPayloads.Status("wamid.round2", "delivered", 1700000041, "4915222"),
        ]);
        Assert.Equal(HttpStatusCode.OK, (await _gateway.PostWebhookAsync(body)).StatusCode);

        List<JsonElement> messages = await SyncClient.GetAllAsync(_gateway.Client, account, "messages");
        JsonElement read = messages.Single(x => x.GetProperty("wamid").GetString() == "wamid.round1");
        Assert.Equal("read", read.GetProperty("status").GetString());
        Assert.Equal(1700000030, read.GetProperty("status_timestamp").GetInt64());
        Assert.Equal("4915111", read.GetProperty("to").GetString());
        JsonElement failed = messages.Single(x => x.GetProperty("wamid").GetString() == "wamid.round2");
        Assert.Equal("failed", failed.GetProperty("status").GetString());
        Assert.Equal(1700000040, failed.GetProperty("status_timestamp").GetInt64());
        Assert.Equal(131047, failed.GetProperty("status_errors")[0].GetProperty("code").GetInt32());
        Assert.Equal(5, await Database.CountAsync(_connectionString, "SELECT count(*) FROM message_statuses WHERE account = $1", account));
    }

    [Fact]
    public async Task Post_StatusChange_GivesMessageANewSeq()
    {
        string account = NewAccount();
        await _gateway.PostWebhookAsync(WebhookPayloads.Envelope(account, statuses: [WebhookPayloads.Status("wamid.s", "sent", 10, "49")]));
        SyncClient.Page first = await SyncClient.GetPageAsync(_gateway.Client, account, "messages", 0);
        long cursor = first.LatestSeq;
        await _gateway.PostWebhookAsync(WebhookPayloads.Envelope(account, statuses: [WebhookPayloads.Status("wamid.s", "delivered", 11, "49")]));
        SyncClient.Page next = await SyncClient.GetPageAsync(_gateway.Client, account, "messages", cursor);
        JsonElement changed = Assert.Single(next.Items);
        Assert.Equal("delivered", changed.GetProperty("status").GetString());
        Assert.True(changed.GetProperty("seq").GetInt64() > cursor);
    }

    [Fact]
    public async Task Post_RotatedSecret_Accepted()
    {
        string account = NewAccount();
        string body = WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage("wamid.rot", "1", 1, "r")]);
        Assert.Equal(HttpStatusCode.OK, (await _gateway.PostWebhookAsync(body, GatewayHost.RotatedSecret)).StatusCode);
    }

    [Fact]
    public async Task Post_OtherField_KeptOnce()
    {
        string body = """{"object":"whatsapp_business_account","entry":[{"id":"WABA-T","time":1,"changes":[{"value":{"event":"APPROVED","message_template_id":77,"message_template_name":"hello"},"field":"message_template_status_update"}]}]}""";
        Assert.Equal(HttpStatusCode.OK, (await _gateway.PostWebhookAsync(body)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _gateway.PostWebhookAsync(body)).StatusCode);
        Assert.Equal(1, await Database.CountAsync(_connectionString, "SELECT count(*) FROM account_updates WHERE waba_id = 'WABA-T' AND field = 'message_template_status_update' AND convert_from(payload, 'UTF8')::jsonb->>'event' = 'APPROVED'"));
    }

    public static TheoryData<string, int, string> BadRequests() => new()
    {
        { "bad-signature", 401, "signature_mismatch" },
        { "no-signature", 401, "missing_signature" },
        { "oversize", 413, "body_too_large" },
        { "oversize-chunked", 413, "body_too_large" },
        { "malformed", 400, "malformed_json" },
        { "wrong-shape", 400, "wrong_shape" },
        { "missing-metadata", 400, "missing_field" },
        { "lone-surrogate", 400, "invalid_string_escape" },
        { "text/plain", 415, "unsupported_media_type" },
        { "gzip", 415, "unsupported_content_encoding" },
        { "key-too-long", 400, "key_too_long" },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task Post_BadInput_ClearStatusNothingStoredAndStillServing(string kind, int expectedStatus, string expectedCode)
    {
        string account = NewAccount();
        string valid = WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage("wamid.bad", "1", 1, "x")]);
        long rowsBefore = await Database.TotalRowsAsync(_connectionString);
        var request = new HttpRequestMessage(HttpMethod.Post, "/webhooks/whatsapp");
        byte[] body = kind switch
        {
            "oversize" or "oversize-chunked" => Encoding.UTF8.GetBytes(WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage("w", "1", 1, new string('a', 250_000))])),
            "malformed" => Encoding.UTF8.GetBytes(valid[..^5]),
            "wrong-shape" => Encoding.UTF8.GetBytes(valid.Replace("\"entry\":[", "\"entry\":[[],", StringComparison.Ordinal)),
            "missing-metadata" => Encoding.UTF8.GetBytes(valid.Replace("\"metadata\"", "\"metadata_x\"", StringComparison.Ordinal)),
            "lone-surrogate" => Encoding.UTF8.GetBytes(valid.Replace("\"body\":\"x\"", "\"body\":\"\\ud83d\"", StringComparison.Ordinal)),
            "key-too-long" => Encoding.UTF8.GetBytes(valid.Replace("wamid.bad", "wamid." + new string('x', 10_000), StringComparison.Ordinal)),
            _ => Encoding.UTF8.GetBytes(valid),
        };
        request.Content = new ByteArrayContent(body);
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(kind == "text/plain" ? "text/plain" : "application/json");
        if (kind == "oversize-chunked")
        {
            request.Headers.TransferEncodingChunked = true;
        }

        if (kind == "gzip")
        {
            request.Content.Headers.ContentEncoding.Add("gzip");
        }

        if (kind != "no-signature")
        {
            request.Headers.TryAddWithoutValidation("X-Hub-Signature-256", WebhookSigner.Sign(body, kind == "bad-signature" ? "not-the-secret" : GatewayHost.Secret));
        }

        using HttpResponseMessage response = await _gateway.Client.SendAsync(request);
        Assert.Equal(expectedStatus, (int)response.StatusCode);
        using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(expectedCode, error.RootElement.GetProperty("error").GetString());
        Assert.Equal(rowsBefore, await Database.TotalRowsAsync(_connectionString));

        // The process keeps serving.
        Assert.Equal(HttpStatusCode.OK, (await _gateway.PostWebhookAsync(valid)).StatusCode);
    }

    [Fact]
    public async Task Sync_Paging_FollowsCursorWithHasMoreAndLatestSeq()
    {
        string account = NewAccount();
        var messages = Enumerable.Range(0, 25).Select(i => WebhookPayloads.TextMessage($"wamid.p{i}", "4915111", 1700000000 + i, $"m{i}"));
        Assert.Equal(HttpStatusCode.OK, (await _gateway.PostWebhookAsync(WebhookPayloads.Envelope(account, messages: messages))).StatusCode);

        var seen = new List<long>();
        long cursor = 0;
        int pages = 0;
        while (true)
        {
            SyncClient.Page page = await SyncClient.GetPageAsync(_gateway.Client, account, "messages", cursor, limit: 10);
            pages++;
            seen.AddRange(page.Items.Select(static i => i.GetProperty("seq").GetInt64()));
            // The cursor to continue from: the page's last item while more follow, then the account's latest seq
            // (25 messages and one conversation update).
            Assert.Equal(page.HasMore ? seen[^1] : 26, page.LatestSeq);
            if (!page.HasMore)
            {
                break;
            }

            cursor = page.LatestSeq;
        }

        Assert.Equal(3, pages);
        Assert.Equal(Enumerable.Range(1, 25).Select(static i => (long)i), seen);
    }

    [Theory]
    [InlineData("since_seq=-1")]
    [InlineData("since_seq=abc")]
    [InlineData("limit=0")]
    [InlineData("limit=1001")]
    public async Task Sync_BadQuery_Returns400(string query)
    {
        using HttpResponseMessage response = await _gateway.Client.GetAsync("/v1/accounts/PN1/messages?" + query);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task Sync_UnknownAccount_EmptyWithZeroLatestSeq()
    {
        SyncClient.Page page = await SyncClient.GetPageAsync(_gateway.Client, NewAccount(), "messages", 0);
        Assert.Empty(page.Items);
        Assert.Equal(0, page.LatestSeq);
        Assert.False(page.HasMore);
    }

    [Fact]
    public async Task Health_LiveAndReady()
    {
        Assert.Equal(HttpStatusCode.OK, (await _gateway.Client.GetAsync("/healthz")).StatusCode);
        using HttpResponseMessage ready = await _gateway.Client.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Contains("\"status\":\"ready\"", await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
