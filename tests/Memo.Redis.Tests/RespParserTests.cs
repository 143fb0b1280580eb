using System.Buffers;
using System.Text;
using Memo.Ingest.TestSupport;
using Memo.Redis;
using Memo.Redis.Protocol;
using Xunit;

namespace Memo.Redis.Tests;

public sealed class RespParserTests
{
    /// <summary>Every kind of reply, RESP2 and RESP3, back to back, with the rendering each must parse to.</summary>
    private static readonly (string Wire, string Parsed)[] Replies =
    [
        ("+OK\r\n", "SimpleString:OK"),
        ("-ERR unknown command 'FOO'\r\n", "Error:ERR unknown command 'FOO'"),
        (":0\r\n", "Integer:0"),
        (":-9223372036854775808\r\n", "Integer:-9223372036854775808"),
        ("$5\r\nhello\r\n", "BulkString:hello"),
        ("$0\r\n\r\n", "BulkString:"),
        ("$6\r\nb\r\nc\r\n\r\n", "BulkString:b\r\nc\r\n"),
        ("$-1\r\n", "(nil)"),
        ("*-1\r\n", "(nil)"),
        ("*0\r\n", "[]"),
        ("*3\r\n:1\r\n$-1\r\n*2\r\n+a\r\n$2\r\n\u00e9\r\n", "[Integer:1, (nil), [SimpleString:a, BulkString:\u00e9]]"),
        ("_\r\n", "(nil)"),
        ("#t\r\n", "Boolean:1"),
        (",3.5\r\n", "3.5"),
        (",-inf\r\n", "-Infinity"),
        ("(3492890328409238509324850943850943825024385\r\n", "BulkString:3492890328409238509324850943850943825024385"),
        ("=15\r\ntxt:Some string\r\n", "BulkString:Some string"),
        ("!21\r\nSYNTAX invalid syntax\r\n", "Error:SYNTAX invalid syntax"),
        ("%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n", "[SimpleString:first, Integer:1, SimpleString:second, Integer:2]"),
        ("~2\r\n+a\r\n+b\r\n", "[SimpleString:a, SimpleString:b]"),
        (">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n", "[BulkString:message, BulkString:ch, BulkString:x]"),
        ("|1\r\n+ttl\r\n:3600\r\n$3\r\nval\r\n", "BulkString:val"),
    ];

    private static readonly byte[] Stream = Encoding.UTF8.GetBytes(string.Concat(Replies.Select(static r => r.Wire)));

    [Fact]
    public void Every_reply_type_parses_whole_split_at_every_byte_and_one_byte_per_segment()
    {
        foreach ((string name, ReadOnlySequence<byte> sequence) in Segments.Variants(Stream))
        {
            ReadOnlySequence<byte> buffer = sequence;
            var parsed = new List<string>();
            while (RespParser.TryRead(ref buffer, out RedisReply reply))
            {
                parsed.Add(reply.ToString());
            }

            Assert.True(buffer.IsEmpty, $"{name}: {buffer.Length} byte(s) left over");
            Assert.Equal(Replies.Select(static r => r.Parsed), parsed);
        }
    }

    [Fact]
    public void A_partial_reply_consumes_nothing_until_its_last_byte_arrives()
    {
        // As bytes trickle in, each prefix yields exactly the replies wholly inside it, and leaves the rest in place.
        int[] ends = Replies.Select(static r => Encoding.UTF8.GetByteCount(r.Wire)).ToArray();
        for (int i = 1; i < ends.Length; i++)
        {
            ends[i] += ends[i - 1];
        }

        for (int length = 0; length <= Stream.Length; length++)
        {
            var buffer = new ReadOnlySequence<byte>(Stream, 0, length);
            int count = 0;
            while (RespParser.TryRead(ref buffer, out _))
            {
                count++;
            }

            int complete = ends.Count(end => end <= length);
            Assert.Equal(complete, count);
            Assert.Equal(length - (complete == 0 ? 0 : ends[complete - 1]), buffer.Length);
        }
    }

    [Theory]
    [InlineData("?what\r\n")]
    [InlineData(":12a\r\n")]
    [InlineData(":\r\n")]
    [InlineData("$3\r\nabcd\r\n")]
    [InlineData("$-2\r\n")]
    [InlineData("*-5\r\n")]
    [InlineData("#x\r\n")]
    [InlineData(",notanumber\r\n")]
    public void Malformed_replies_throw_a_protocol_exception(string wire)
    {
        var buffer = new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(wire));
        Assert.Throws<RedisProtocolException>(() => RespParser.TryRead(ref buffer, out _));
    }

    [Fact]
    public void A_huge_declared_array_is_not_allocated_before_its_bytes_arrive()
    {
        var buffer = new ReadOnlySequence<byte>("*1000000000\r\n:1\r\n"u8.ToArray());
        Assert.False(RespParser.TryRead(ref buffer, out _));
    }
}
