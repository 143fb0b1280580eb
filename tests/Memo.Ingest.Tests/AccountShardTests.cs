using System.Text;
using Memo.Ingest.Sequencing;
using Xunit;

namespace Memo.Ingest.Tests;

/// <summary>
/// <see cref="AccountShard"/> against shards PostgreSQL 15 computed for <c>hashtext(account) &amp; 63</c> (the load
/// tool's accounts, docs/PERFORMANCE.md). The integration test <c>ShardHashTests</c> compares a thousand more strings
/// of every length with the server's own function.
/// </summary>
public sealed class AccountShardTests
{
    [Theory]
    [InlineData("PNrecv0", 18)]
    [InlineData("PNrecv1", 28)]
    [InlineData("PNrecv2", 8)]
    [InlineData("PNrecv3", 38)]
    [InlineData("PNrecv4", 4)]
    [InlineData("PNrecv5", 55)]
    [InlineData("PNrecv6", 62)]
    [InlineData("PNrecv7", 40)]
    [InlineData("PNload000", 46)]
    [InlineData("PNload001", 36)]
    [InlineData("PNload002", 20)]
    [InlineData("PNload003", 32)]
    [InlineData("PNload004", 54)]
    [InlineData("PNload005", 52)]
    [InlineData("PNload006", 49)]
    [InlineData("PNload007", 47)]
    public void The_shard_is_PostgreSQLs(string account, int shard)
    {
        Assert.Equal(shard, AccountShard.Of(Encoding.UTF8.GetBytes(account)));
        Assert.Equal(1UL << shard, AccountShard.MaskOf(Encoding.UTF8.GetBytes(account)));
    }
}
