using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text.Json;
using Memo.Ingest.TestSupport;
using Npgsql;
using Xunit;
using Xunit.Abstractions;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// A replay from seq 0 of an account with a long history is paged and flushed with backpressure: the gateway's memory
/// does not grow with the history (an SSE response that wrote the whole replay before its first flush grew by the
/// whole history), and the clients still get exactly the log's events.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ReplayMemoryTests(PostgresFixture postgres, ITestOutputHelper output)
{
    private const string Account = "PNhistory";
    private const int Events = 200_000;

    [Fact]
    public async Task SseAndWebSocketClients_ReplayingAHugeAccountFromZero_HoldNoMoreThanTheReplayBound()
    {
        string database = await postgres.Server.CreateDatabaseAsync("replay_bound");
        // A small first GC generation, so that the resident size follows what the gateway holds rather than
        // garbage waiting for the next collection.
        await using GatewayProcess gateway = await GatewayProcess.StartAsync(database, PostgresServer.FreePort(),
            environment: new Dictionary<string, string?> { ["DOTNET_GCgen0size"] = "0x400000", ["DOTNET_gcServer"] = "0" });
        await SeedAsync(database);
        string token = GatewayHost.MintToken(Account);

        // A replay of a tenth of the history first: the runtime grows to its working size (JIT, pools, GC
        // generations, threads), which is the same for any history; its peak is the baseline.
        await Task.WhenAll(ReadSseAsync(gateway.Address, token, since: Events - (Events / 10), Events),
            ReadWebSocketAsync(gateway.Address, token, since: Events - (Events / 10), Events));
        long baseline = gateway.PeakResidentBytes;

        var replay = Stopwatch.StartNew();
        long[] received = await Task.WhenAll(ReadSseAsync(gateway.Address, token, since: 0, Events), ReadWebSocketAsync(gateway.Address, token, since: 0, Events));
        long peak = gateway.PeakResidentBytes;

        Assert.Equal([Events, Events], received);
        long growth = peak - baseline;
        output.WriteLine($"2 clients replayed {Events:N0} events each in {replay.Elapsed.TotalSeconds:F1} s; peak RSS after a replay of {Events / 10:N0}: {baseline / 1048576.0:F1} MiB, after {Events:N0}: {peak / 1048576.0:F1} MiB (+{growth / 1048576.0:F1} MiB)");
        // Ten times the history may not take more memory: at most the replay bound of each client (about 3 pages of
        // ReplayPageBytes, 64 KiB) above the peak of the short replay, with 4 MiB for the runtime's own variation.
        // The history is about 150 MB per client; replay written without a flush per page grew the gateway by
        // 172 MiB here.
        long bound = 2 * 3 * 64 * 1024 + 4 * 1048576;
        Assert.True(growth <= bound, $"the gateway's peak grew by {growth / 1048576.0:F1} MiB (bound {bound / 1048576.0:F1} MiB) when 2 clients replayed ten times more events");
    }

    /// <summary>Reads an SSE stream until <paramref name="until"/>, checking that seqs go up by one; returns how many events came.</summary>
    private static async Task<long> ReadSseAsync(Uri gateway, string token, long since, long until)
    {
        using var http = new HttpClient { BaseAddress = gateway, Timeout = Timeout.InfiniteTimeSpan };
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/stream/sse?accounts={Account}&since={Account}:{since}");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using HttpResponseMessage response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        long expected = since + 1;
        while (expected <= until && await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("data: {\"type\":\"event\"", StringComparison.Ordinal))
            {
                Assert.Equal(expected++, SeqOf(line.AsSpan("data: ".Length)));
            }
        }

        return expected - since - 1;
    }

    private static async Task<long> ReadWebSocketAsync(Uri gateway, string token, long since, long until)
    {
        using var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("Authorization", "Bearer " + token);
        await socket.ConnectAsync(new Uri($"ws://{gateway.Authority}/v1/stream/ws?accounts={Account}&since={Account}:{since}"), CancellationToken.None);
        byte[] buffer = new byte[64 * 1024];
        long expected = since + 1;
        while (expected <= until)
        {
            int length = 0;
            ValueWebSocketReceiveResult result;
            do
            {
                result = await socket.ReceiveAsync(buffer.AsMemory(length), CancellationToken.None);
                length += result.Count;
            }
            while (!result.EndOfMessage);

            if (buffer.AsSpan(0, length).StartsWith("{\"type\":\"event\""u8))
            {
                Assert.Equal(expected++, SeqOf(buffer.AsSpan(0, length)));
            }
        }

        socket.Abort();
        return expected - since - 1;
    }

    private static long SeqOf(ReadOnlySpan<char> json)
    {
        using JsonDocument document = JsonDocument.Parse(json.ToString());
        return document.RootElement.GetProperty("seq").GetInt64();
    }

    private static long SeqOf(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.PropertyName && reader.ValueTextEquals("seq"u8))
            {
                reader.Read();
                return reader.GetInt64();
            }
        }

        throw new FormatException("An event without a seq.");
    }

    /// <summary>A history of <see cref="Events"/> messages of about 600 bytes of JSON each, written straight into the log.</summary>
    private static async Task SeedAsync(string database)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($$$"""
            INSERT INTO messages (account, wamid, seq, direction, from_wa_id, ts, type, body, payload)
            SELECT '{{{Account}}}', 'wamid.h.' || g, g, 'inbound', '4915111111111', 1700000000 + g, 'text', repeat('x', 160),
                   convert_to('{"from":"4915111111111","id":"wamid.h.' || g || '","timestamp":"' || (1700000000 + g) ||
                              '","type":"text","text":{"body":"' || repeat('x', 160) || '"}}', 'UTF8')
            FROM generate_series(1, {{{Events}}}) AS g;
            INSERT INTO account_events (account, seq, kind, key)
            SELECT '{{{Account}}}', g, 1, 'wamid.h.' || g FROM generate_series(1, {{{Events}}}) AS g;
            INSERT INTO accounts (phone_number_id, last_seq) VALUES ('{{{Account}}}', {{{Events}}});
            ANALYZE messages; ANALYZE account_events;
            """, connection);
        command.CommandTimeout = 300;
        await command.ExecuteNonQueryAsync();
    }
}
