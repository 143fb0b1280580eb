using System.Buffers;
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
        CommittedEvent[] written =
        [
            new("PN1", 41, EventKind.MessageCreated, "wamid.a", null, 0),
            new("PN1", 42, EventKind.MessageStatus, "wamid.a", "read", 1700000000),
            new("PN2", 7, EventKind.ContactUpdated, "49\u00e9\U0001F600", "", -1),
        ];
        EventFrame.WriteHeader(output, origin, written.Length);
        foreach (CommittedEvent committed in written)
        {
            EventFrame.WriteEvent(output, committed);
        }

        var events = new List<CommittedEvent>();
        Guid decodedOrigin = EventFrame.Read(output.WrittenSpan, events);

        Assert.Equal(origin, decodedOrigin);
        Assert.Equal(written, events);
    }

    [Fact]
    public void Truncated_foreign_or_padded_frames_are_refused()
    {
        var output = new ArrayBufferWriter<byte>();
        EventFrame.WriteHeader(output, Guid.NewGuid(), 1);
        EventFrame.WriteEvent(output, new CommittedEvent("PN1", 1, EventKind.MessageCreated, "w", null, 0));
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
