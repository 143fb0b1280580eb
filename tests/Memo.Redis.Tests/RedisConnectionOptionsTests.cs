using Memo.Redis;
using Xunit;

namespace Memo.Redis.Tests;

public sealed class RedisConnectionOptionsTests
{
    [Fact]
    public void Parses_the_usual_connection_string_form()
    {
        RedisConnectionOptions options = RedisConnectionOptions.Parse(
            "cache.example:6380, user=app ,password=s3cr=t,ssl=true,sslHost=redis.example,defaultDatabase=2," +
            "connectTimeout=1500,syncTimeout=250,name=memo,abortConnect=false");

        Assert.Equal("cache.example", options.Host);
        Assert.Equal(6380, options.Port);
        Assert.Equal("app", options.User);
        Assert.Equal("s3cr=t", options.Password);
        Assert.True(options.Ssl);
        Assert.Equal("redis.example", options.SslHost);
        Assert.Equal(2, options.Database);
        Assert.Equal(TimeSpan.FromMilliseconds(1500), options.ConnectTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(250), options.CommandTimeout);
        Assert.Equal("memo", options.ClientName);
    }

    [Theory]
    [InlineData("localhost", "localhost", 6379)]
    [InlineData("127.0.0.1:7000", "127.0.0.1", 7000)]
    [InlineData("[::1]:7001", "::1", 7001)]
    [InlineData("[::1]", "::1", 6379)]
    public void Parses_endpoints(string connectionString, string host, int port)
    {
        RedisConnectionOptions options = RedisConnectionOptions.Parse(connectionString);
        Assert.Equal(host, options.Host);
        Assert.Equal(port, options.Port);
    }

    [Theory]
    [InlineData("host:1,host:2")]
    [InlineData("password=x")]
    [InlineData("host:0")]
    [InlineData("host:99999")]
    [InlineData("host,ssl=maybe")]
    [InlineData("host,defaultDatabase=-1")]
    [InlineData("host,tiebreaker=x")]
    [InlineData("[::1")]
    public void Refuses_what_it_cannot_honour(string connectionString)
    {
        Assert.Throws<FormatException>(() => RedisConnectionOptions.Parse(connectionString));
    }

    [Fact]
    public void Rendering_for_logs_never_shows_the_password()
    {
        string rendered = RedisConnectionOptions.Parse("h:1,user=u,password=hunter2,defaultDatabase=3").ToString();
        Assert.DoesNotContain("hunter2", rendered, StringComparison.Ordinal);
        Assert.Equal("h:1,user=u,password=*****,defaultDatabase=3", rendered);
    }
}
