using System.Buffers;
using System.Text;
using Memo.Ingest.Events;
using Memo.Ingest.Ingest;
using Xunit;

namespace Memo.Ingest.Tests;

public sealed class EventFrameTests
{
    private static readonly (string Account, long Seq, EventKind Kind, string Json)[] Written =
    [
        ("PN1", 41, EventKind.MessageCreated, """{"type":"event","seq":41}"""),
        ("PN1", 42, EventKind.MessageStatus, ""),
        ("PN\u00e9\U0001F600", 7, EventKind.ContactUpdated, """{"text":"J\u00f6rg \U0001F600"}"""),
    ];

    [Fact]
    public void A_frame_round_trips_every_field_including_empty_and_non_ascii_text()
    {
        var origin = Guid.NewGuid();
        byte[] frame = Write(origin);

        Assert.True(EventFrame.TryReadOrigin(frame, out Guid decodedOrigin));
        Assert.Equal(origin, decodedOrigin);
        var read = new List<(string, long, EventKind, string)>();
        var reader = new EventFrame.Reader(frame);
        while (reader.TryReadNext(out ReadOnlySpan<byte> account, out long seq, out EventKind kind, out ReadOnlySpan<byte> json))
        {
            read.Add((Encoding.UTF8.GetString(account), seq, kind, Encoding.UTF8.GetString(json)));
        }

        Assert.Equal(Written, read);
    }

    [Fact]
    public void Truncated_foreign_or_padded_frames_are_refused()
    {
        byte[] frame = Write(Guid.NewGuid());

        for (int length = 0; length < frame.Length; length++)
        {
            Assert.Throws<FormatException>(() => ReadAll(frame.AsSpan(0, length)));
        }

        Assert.Throws<FormatException>(() => ReadAll([.. frame, 0]));
        frame[0] = 1;
        Assert.Throws<FormatException>(() => ReadAll(frame));
        Assert.False(EventFrame.TryReadOrigin(frame, out _));
    }

    private static byte[] Write(Guid origin)
    {
        var output = new ArrayBufferWriter<byte>();
        EventFrame.WriteHeader(output, origin);
        foreach ((string account, long seq, EventKind kind, string json) in Written)
        {
            int lengthAt = EventFrame.BeginEvent(output, account, seq, kind);
            output.Write(Encoding.UTF8.GetBytes(json));
            EventFrame.EndEvent(output, lengthAt);
        }

        EventFrame.SetCount(output, Written.Length);
        return output.WrittenSpan.ToArray();
    }

    private static int ReadAll(ReadOnlySpan<byte> frame)
    {
        int count = 0;
        var reader = new EventFrame.Reader(frame);
        while (reader.TryReadNext(out _, out _, out _, out _))
        {
            count++;
        }

        return count;
    }
}
