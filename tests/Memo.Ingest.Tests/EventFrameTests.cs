using System.Buffers;
using System.Text;
using Memo.Ingest.Events;
using Memo.Ingest.Ingest;
using Xunit;

namespace Memo.Ingest.Tests;

public sealed class EventFrameTests
{
    [Fact]
    public void A_frame_round_trips_every_field_including_null_status_and_non_ascii_text()
    {
        var origin = Guid.NewGuid();
        var output = new ArrayBufferWriter<byte>();
        EventFrame.WriteHeader(output, origin, 3);
        EventFrame.WriteEvent(output, "PN1"u8, 41, EventKind.MessageCreated, "wamid.a"u8, default, hasStatus: false, 0);
        EventFrame.WriteEvent(output, "PN1"u8, 42, EventKind.MessageStatus, "wamid.a"u8, "read"u8, hasStatus: true, 1700000000);
        EventFrame.WriteEvent(output, "PN2"u8, 7, EventKind.ContactUpdated, Encoding.UTF8.GetBytes("49\u00e9\U0001F600"), ""u8, hasStatus: true, -1);

        var events = new List<CommittedEvent>();
        Guid decodedOrigin = EventFrame.Read(output.WrittenSpan, events);

        Assert.Equal(origin, decodedOrigin);
        Assert.Equal(
        [
            new CommittedEvent("PN1", 41, EventKind.MessageCreated, "wamid.a", null, 0),
            new CommittedEvent("PN1", 42, EventKind.MessageStatus, "wamid.a", "read", 1700000000),
            new CommittedEvent("PN2", 7, EventKind.ContactUpdated, "49\u00e9\U0001F600", "", -1),
        ], events);
    }

    [Fact]
    public void Truncated_foreign_or_padded_frames_are_refused()
    {
        var output = new ArrayBufferWriter<byte>();
        EventFrame.WriteHeader(output, Guid.NewGuid(), 1);
        EventFrame.WriteEvent(output, "PN1"u8, 1, EventKind.MessageCreated, "w"u8, default, hasStatus: false, 0);
        byte[] frame = output.WrittenSpan.ToArray();

        for (int length = 0; length < frame.Length; length++)
        {
            Assert.Throws<FormatException>(() => EventFrame.Read(frame.AsSpan(0, length), []));
        }

        Assert.Throws<FormatException>(() => EventFrame.Read([.. frame, 0], []));
        frame[0] = 2;
        Assert.Throws<FormatException>(() => EventFrame.Read(frame, []));
    }
}
