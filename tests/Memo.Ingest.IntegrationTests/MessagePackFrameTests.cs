using System.Text;
using System.Text.Json.Nodes;
using Memo.Ingest.Streams;
using Memo.Ingest.TestSupport;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// Our MessagePack writer checked by an independent decoder, npm's @msgpack/msgpack (tests/js; scripts/test.sh
/// installs it): binary frames must decode to the same data as the JSON frames.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class MessagePackFrameTests(PostgresFixture postgres)
{
    [Fact]
    public async Task MessagePackFrames_DecodeWithMsgpackJs_ToTheSameDataAsTheJsonFrames()
    {
        string database = await postgres.Server.CreateDatabaseAsync("msgpack");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database);
        string token = GatewayHost.MintToken("PNpack");
        await using StreamClient json = await StreamClient.OpenWebSocketAsync(gateway.Address, token, "PNpack", since: "PNpack:0");
        await using StreamClient binary = await StreamClient.OpenWebSocketAsync(gateway.Address, token, "PNpack", since: "PNpack:0",
            subprotocol: WebSocketTransport.MessagePackSubprotocol);
        Assert.Equal(WebSocketTransport.MessagePackSubprotocol, binary.SubProtocol);

        // Every message type (emoji, RTL text, escapes, nested objects, arrays), a contact, statuses with errors.
        var corpus = WebhookPayloads.MessageOfEveryType("wamid.pack", "4915552", 1700000000);
        string body = WebhookPayloads.Envelope("PNpack", messages: corpus.Select(static m => m.Json), contacts: [WebhookPayloads.Contact("4915552", "\u05e9\u05dc\u05d5\u05dd \U0001F600")],
            statuses: [WebhookPayloads.Status("wamid.pack.out", "failed", 1700000100, "4915552", withErrors: true, withPricing: true)]);
        Assert.Equal(System.Net.HttpStatusCode.OK, (await gateway.PostWebhookAsync(body)).StatusCode);

        await StreamTests.AssertEveryLoggedEventOnceAsync(database, json, ["PNpack"], after: 0);
        await binary.WaitForAsync(m => m.Count(static x => x.Binary is not null) >= json.Events.Count(), "every binary frame");

        JsonNode?[] fromJson = [.. json.Events.Select(static e => JsonNode.Parse(e.Root.GetRawText()))];
        JsonNode?[] fromMessagePack = await DecodeAsync(binary.Messages.Where(static m => m.Binary is not null).Select(static m => m.Binary!));
        Assert.Equal(fromJson.Length, fromMessagePack.Length);
        for (int i = 0; i < fromJson.Length; i++)
        {
            Assert.True(JsonNode.DeepEquals(fromJson[i], fromMessagePack[i]), $"frame {i}: {fromJson[i]?.ToJsonString()} vs {fromMessagePack[i]?.ToJsonString()}");
        }
    }

    [Fact]
    public async Task EveryEncodingBoundary_DecodesToTheSameValue()
    {
        // Integers, strings, arrays and maps at each size where MessagePack switches encodings.
        long[] integers = [0, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, 9007199254740991, -1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649, -9007199254740991];
        int[] lengths = [0, 15, 16, 31, 32, 255, 256, 65535, 65536];
        var document = new JsonObject
        {
            ["integers"] = new JsonArray([.. integers.Select(static i => (JsonNode)i)]),
            ["doubles"] = new JsonArray(0.5, -1.25, 1e300),
            ["strings"] = new JsonArray([.. lengths.Select(static n => (JsonNode)new string('\u00e9', n / 2).PadRight(n, 'a'))]),
            ["arrays"] = new JsonArray([.. lengths.Take(4).Select(static n => (JsonNode)new JsonArray([.. Enumerable.Range(0, n).Select(static i => (JsonNode)i)]))]),
            ["maps"] = new JsonArray([.. lengths.Take(4).Select(static n => (JsonNode)new JsonObject(Enumerable.Range(0, n).Select(static i => KeyValuePair.Create($"k{i}", (JsonNode?)i))))]),
            ["flags"] = new JsonArray(true, false, null),
        };
        byte[] frame = MessagePackTranscoder.FromJson(Encoding.UTF8.GetBytes(document.ToJsonString()));

        JsonNode? decoded = (await DecodeAsync([frame])).Single();

        Assert.True(JsonNode.DeepEquals(document, decoded), decoded?.ToJsonString());
    }

    /// <summary>Runs tests/js/msgpack-decode.mjs over the frames and parses what it prints.</summary>
    private static async Task<JsonNode?[]> DecodeAsync(IEnumerable<byte[]> frames)
    {
        string input = string.Join('\n', frames.Select(Convert.ToBase64String)) + "\n";
        (int exitCode, string output) = await ExternalTool.RunAsync("node", input, Path.Combine(RepositoryScript.Root, "tests", "js", "msgpack-decode.mjs"));
        Assert.True(exitCode == 0, "node msgpack-decode.mjs: " + output);
        return [.. output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(static line => JsonNode.Parse(line))];
    }
}
