using System.Text;
using Memo.Redis.Protocol;
using Xunit;

namespace Memo.Redis.Tests;

public sealed class RespCommandBufferTests
{
    [Fact]
    public void Commands_are_arrays_of_bulk_strings_and_pipeline_back_to_back()
    {
        using var buffer = new RespCommandBuffer(initialCapacity: 8);
        buffer.Command("SET", "k\u00e9y", "v");
        buffer.Command(3).Argument("EXPIRE"u8).Argument("key"u8).Argument(-42);
        buffer.Command(2).Argument("GET"u8).BeginArgument(7).Append("a:"u8).Append("b:c"u8).Append("dd"u8).EndArgument();

        Assert.Equal(3, buffer.Commands);
        Assert.Equal(
            "*3\r\n$3\r\nSET\r\n$4\r\nk\u00e9y\r\n$1\r\nv\r\n" +
            "*3\r\n$6\r\nEXPIRE\r\n$3\r\nkey\r\n$3\r\n-42\r\n" +
            "*2\r\n$3\r\nGET\r\n$7\r\na:b:cdd\r\n",
            Encoding.UTF8.GetString(buffer.Written.Span));

        buffer.Reset();
        Assert.Equal(0, buffer.Commands);
        Assert.True(buffer.Written.IsEmpty);
    }

    [Fact]
    public void Misuse_is_caught_before_anything_is_sent()
    {
        using var buffer = new RespCommandBuffer();
        Assert.Throws<InvalidOperationException>(() => buffer.Argument("no command"));

        buffer.Command(2).Argument("GET"u8);
        Assert.Throws<InvalidOperationException>(() => buffer.Written);

        buffer.BeginArgument(5).Append("abc"u8);
        Assert.Throws<InvalidOperationException>(() => buffer.EndArgument());
    }
}
