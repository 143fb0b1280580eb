using System.Collections.Concurrent;
using System.Text;
using Memo.Ingest.TestSupport;
using Memo.Redis;
using Memo.Redis.Protocol;
using Xunit;

namespace Memo.Redis.Tests;

/// <summary>The client against a real redis-server on loopback; each test gets its own server.</summary>
public sealed class RedisConnectionTests : IAsyncLifetime
{
    private RedisServer _server = null!;

    public async Task InitializeAsync() => _server = await RedisServer.StartAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private RedisConnectionOptions Options(string extra = "") =>
        RedisConnectionOptions.Parse(_server.ConnectionString + ",connectTimeout=2000,commandTimeout=2000" + extra);

    [Fact]
    public async Task Hundreds_of_concurrent_commands_share_one_connection_and_each_gets_its_own_reply()
    {
        await using RedisConnection redis = await RedisConnection.ConnectAsync(Options());

        Task<RedisReply>[] increments = Enumerable.Range(0, 500).Select(_ => redis.ExecuteAsync("INCR", "counter")).ToArray();
        long[] values = (await Task.WhenAll(increments)).Select(static r => r.Integer).ToArray();

        // Each INCR saw a distinct value: replies were matched to their commands, none lost or swapped.
        Assert.Equal(Enumerable.Range(1, 500).Select(static i => (long)i), values.Order());
        Assert.Equal("500", (await redis.ExecuteAsync("GET", "counter")).AsString());
    }

    [Fact]
    public async Task One_buffer_of_hundreds_of_commands_is_one_write_with_replies_in_order()
    {
        await using RedisConnection redis = await RedisConnection.ConnectAsync(Options());
        using var buffer = new RespCommandBuffer();
        for (int i = 0; i < 300; i++)
        {
            buffer.Command("SET", $"key:{i}", new string('v', i));
        }

        buffer.Command(301).Argument("MGET"u8);
        for (int i = 0; i < 300; i++)
        {
            buffer.Argument($"key:{i}");
        }

        RedisReply[] replies = await redis.ExecuteAsync(buffer);
        Assert.Equal(301, replies.Length);
        Assert.All(replies[..300], static r => Assert.Equal("OK", r.AsString()));
        RedisReply[] values = replies[300].Items.ToArray();
        for (int i = 0; i < 300; i++)
        {
            Assert.Equal(new string('v', i), values[i].AsString());
        }
    }

    [Fact]
    public async Task Error_replies_are_clear_exceptions_and_the_connection_stays_usable()
    {
        await using RedisConnection redis = await RedisConnection.ConnectAsync(Options());
        await redis.ExecuteAsync("SET", "text", "abc");

        var wrongType = await Assert.ThrowsAsync<RedisServerException>(() => redis.ExecuteAsync("INCR", "text"));
        Assert.Equal("ERR", wrongType.ErrorCode);
        var unknown = await Assert.ThrowsAsync<RedisServerException>(() => redis.ExecuteAsync("NOSUCHCOMMAND"));
        Assert.Contains("unknown command", unknown.Message, StringComparison.OrdinalIgnoreCase);

        Assert.Equal("PONG", (await redis.ExecuteAsync("PING")).AsString());
    }

    [Fact]
    public async Task After_the_server_restarts_commands_fail_fast_then_the_client_reconnects_by_itself()
    {
        var changes = new ConcurrentQueue<RedisConnectionChange>();
        await using RedisConnection redis = await RedisConnection.ConnectAsync(Options());
        redis.StateChanged += changes.Enqueue;
        await redis.ExecuteAsync("SET", "before", "1");

        await _server.StopAsync();
        await Eventually.TrueAsync(() => !redis.IsConnected, "client notices the server is gone");
        await Assert.ThrowsAsync<RedisConnectionException>(() => redis.ExecuteAsync("PING"));

        await _server.StartAgainAsync();
        await redis.WaitUntilConnectedAsync(TimeSpan.FromSeconds(15));
        Assert.Equal("PONG", (await redis.ExecuteAsync("PING")).AsString());
        Assert.Contains(changes, static c => !c.IsConnected);
        Assert.Contains(changes, static c => c.IsConnected);
    }

    [Fact]
    public async Task A_command_without_a_reply_times_out_and_the_connection_is_made_afresh()
    {
        await using RedisConnection redis = await RedisConnection.ConnectAsync(
            RedisConnectionOptions.Parse(_server.ConnectionString + ",commandTimeout=200"));
        await using RedisConnection admin = await RedisConnection.ConnectAsync(Options());

        // CLIENT PAUSE holds every client's commands for longer than the command timeout: a stuck server.
        await admin.ExecuteAsync("CLIENT", "PAUSE", "1000", "ALL");
        await Assert.ThrowsAsync<RedisTimeoutException>(() => redis.ExecuteAsync("PING"));
        await redis.WaitUntilConnectedAsync(TimeSpan.FromSeconds(15));
        Assert.Equal("PONG", (await redis.ExecuteAsync("PING")).AsString());
    }

    [Fact]
    public async Task Database_selection_keeps_keys_apart()
    {
        await using RedisConnection db3 = await RedisConnection.ConnectAsync(Options(",defaultDatabase=3"));
        await using RedisConnection db0 = await RedisConnection.ConnectAsync(Options());
        await db3.ExecuteAsync("SET", "where", "three");

        Assert.Equal("three", (await db3.ExecuteAsync("GET", "where")).AsString());
        Assert.True((await db0.ExecuteAsync("GET", "where")).IsNull);
    }

    [Fact]
    public async Task Pub_sub_delivers_messages_and_subscribes_again_after_a_restart()
    {
        var received = new ConcurrentQueue<string>();
        var subscribed = new SemaphoreSlim(0);
        await using RedisConnection publisher = await RedisConnection.ConnectAsync(Options());
        await using RedisSubscriber subscriber = RedisSubscriber.Create(Options(), ["events", "other"],
            (channel, payload) => received.Enqueue(Encoding.UTF8.GetString(channel) + "=" + Encoding.UTF8.GetString(payload.Span)));
        subscriber.StateChanged += change =>
        {
            if (change.IsConnected)
            {
                subscribed.Release();
            }
        };

        Assert.True(await subscribed.WaitAsync(TimeSpan.FromSeconds(15)));
        Assert.Equal(1, (await publisher.ExecuteAsync("PUBLISH", "events", "one")).Integer);
        await publisher.ExecuteAsync("PUBLISH", "other", "two");
        await publisher.ExecuteAsync("PUBLISH", "unrelated", "ignored");
        await Eventually.TrueAsync(() => received.Count >= 2, "two messages received");

        await _server.StopAsync();
        await _server.StartAgainAsync();
        Assert.True(await subscribed.WaitAsync(TimeSpan.FromSeconds(15)), "the subscriber did not subscribe again");
        await publisher.WaitUntilConnectedAsync(TimeSpan.FromSeconds(15));
        await Eventually.TrueAsync(async () => (await publisher.ExecuteAsync("PUBLISH", "events", "three")).Integer == 1, "one subscriber again");
        await Eventually.TrueAsync(() => received.Contains("events=three"), "message after restart received");

        Assert.Equal(["events=one", "other=two", "events=three"], received.Distinct());
    }
}
