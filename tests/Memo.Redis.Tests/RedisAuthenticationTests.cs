using Memo.Ingest.TestSupport;
using Memo.Redis;
using Xunit;

namespace Memo.Redis.Tests;

/// <summary>AUTH with the default user's password and with an ACL user, against a server that requires them.</summary>
public sealed class RedisAuthenticationTests : IAsyncLifetime
{
    private const string Password = "default-pass";
    private RedisServer _server = null!;

    public async Task InitializeAsync()
    {
        _server = await RedisServer.StartAsync("--requirepass", Password);
        await using RedisConnection admin = await RedisConnection.ConnectAsync(RedisConnectionOptions.Parse($"{_server.ConnectionString},password={Password}"));
        await admin.ExecuteAsync("ACL", "SETUSER", "memo", "on", ">memo-pass", "~memo:*", "+@all");
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Password_only_authenticates_the_default_user()
    {
        await using RedisConnection redis = await RedisConnection.ConnectAsync(RedisConnectionOptions.Parse($"{_server.ConnectionString},password={Password}"));
        Assert.Equal("default", (await redis.ExecuteAsync("ACL", "WHOAMI")).AsString());
    }

    [Fact]
    public async Task User_and_password_authenticate_an_acl_user_with_its_permissions()
    {
        await using RedisConnection redis = await RedisConnection.ConnectAsync(RedisConnectionOptions.Parse($"{_server.ConnectionString},user=memo,password=memo-pass"));
        Assert.Equal("memo", (await redis.ExecuteAsync("ACL", "WHOAMI")).AsString());
        await redis.ExecuteAsync("SET", "memo:allowed", "1");
        var denied = await Assert.ThrowsAsync<RedisServerException>(() => redis.ExecuteAsync("SET", "elsewhere", "1"));
        Assert.Equal("NOPERM", denied.ErrorCode);
    }

    [Fact]
    public async Task A_wrong_password_is_a_clear_error_that_does_not_echo_the_password()
    {
        var error = await Assert.ThrowsAsync<RedisConnectionException>(() =>
            RedisConnection.ConnectAsync(RedisConnectionOptions.Parse($"{_server.ConnectionString},password=not-it,connectTimeout=1000")));
        Assert.Contains("WRONGPASS", error.InnerException?.Message ?? error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("not-it", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_a_password_commands_are_refused()
    {
        var error = await Assert.ThrowsAsync<RedisConnectionException>(() =>
            RedisConnection.ConnectAsync(RedisConnectionOptions.Parse($"{_server.ConnectionString},connectTimeout=1000")));
        Assert.Contains("NOAUTH", error.InnerException?.Message ?? error.Message, StringComparison.Ordinal);
    }
}
