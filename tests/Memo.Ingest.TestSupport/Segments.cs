using System.Buffers;

namespace Memo.Ingest.TestSupport;

/// <summary>Builds multi-segment sequences, and every split of an input a parser must handle.</summary>
public static class Segments
{
    public static ReadOnlySequence<byte> Create(params byte[][] parts)
    {
        if (parts.Length == 1)
        {
            return new ReadOnlySequence<byte>(parts[0]);
        }

        var first = new Segment(parts[0], 0);
        Segment last = first;
        foreach (byte[] part in parts.Skip(1))
        {
            last = last.Append(part);
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    /// <summary>Whole; split into two at every byte; one byte per segment.</summary>
    public static IEnumerable<(string Name, ReadOnlySequence<byte> Sequence)> Variants(byte[] input)
    {
        yield return ("whole", new ReadOnlySequence<byte>(input));
        if (input.Length < 2)
        {
            yield break;
        }

        for (int i = 1; i < input.Length; i++)
        {
            yield return ($"split@{i}", Create(input[..i], input[i..]));
        }

        yield return ("one-byte-segments", Create(input.Select(static b => new[] { b }).ToArray()));
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
