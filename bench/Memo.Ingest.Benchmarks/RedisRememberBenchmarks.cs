using BenchmarkDotNet.Attributes;
using Memo.Ingest.Redis;
using Memo.Ingest.TestSupport;
using Memo.Ingest.Webhooks;
using Memo.Ingest.Webhooks.Parsing;
using StackExchange.Redis;

namespace Memo.Ingest.Benchmarks;

/// <summary>
/// What the gateway builds to remember a committed 100-message webhook in Redis: the script's sets and arguments of
/// <see cref="SeenSets"/> (one set per second, the members of the batch in one array), beside the layout it replaced
/// (a key per id, each its own byte array), rebuilt here as it was for the comparison (docs/DECISIONS.md 39).
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class RedisRememberBenchmarks
{
    private static readonly byte[] Prefix = "memo:"u8.ToArray();
    private static readonly byte[] Database = "db7435719251066363905.1.16384:"u8.ToArray();
    private readonly List<ParsedWebhook> _batch = [new ParsedWebhook()];

    [GlobalSetup]
    public void Setup()
    {
        if (WebhookPayloadReader.Parse(RealisticPayloads.Mixed100, _batch[0]) != WebhookRejectionReason.None)
        {
            throw new InvalidOperationException("The benchmark's webhook did not parse.");
        }
    }

    [Benchmark(Baseline = true, Description = "a key per id (before)")]
    public int KeyPerId()
    {
        ParsedWebhook webhook = _batch[0];
        var keys = new RedisKey[CountRemembered(webhook)];
        Span<byte> timestamp = stackalloc byte[21];
        int k = 0;
        foreach (ref readonly StagedRecord record in webhook.Records)
        {
            if (IsRemembered(in record))
            {
                ReadOnlySpan<byte> tag = record.Kind == RecordKind.Message ? "seen:m:"u8 : "seen:s:"u8;
                ReadOnlySpan<byte> account = webhook.Arena[record.Account];
                ReadOnlySpan<byte> id = webhook.Arena[record.Id];
                ReadOnlySpan<byte> status = record.Kind == RecordKind.Message ? default : webhook.Arena[record.Type];
                int digits = 0;
                if (record.Kind != RecordKind.Message)
                {
                    timestamp[0] = (byte)':';
                    System.Buffers.Text.Utf8Formatter.TryFormat(record.Timestamp, timestamp[1..], out digits);
                    digits++;
                }

                byte[] key = new byte[Prefix.Length + Database.Length + tag.Length + account.Length + 1 + id.Length
                    + (status.IsEmpty ? 0 : 1 + status.Length) + digits];
                Span<byte> rest = key;
                Append(ref rest, Prefix);
                Append(ref rest, Database);
                Append(ref rest, tag);
                Append(ref rest, account);
                Append(ref rest, ":"u8);
                Append(ref rest, id);
                if (!status.IsEmpty)
                {
                    Append(ref rest, ":"u8);
                    Append(ref rest, status);
                    Append(ref rest, timestamp[..digits]);
                }

                keys[k++] = key;
            }
        }

        return keys.Length;
    }

    [Benchmark(Description = "a set per second (after)")]
    public int SetPerSecond()
    {
        ParsedWebhook webhook = _batch[0];
        int count = CountRemembered(webhook);
        SeenSets.Position[] positions = SeenSets.Rent(count);
        int p = 0;
        for (int r = 0; r < webhook.Count; r++)
        {
            if (IsRemembered(in webhook[r]))
            {
                positions[p++] = new SeenSets.Position(webhook[r].Timestamp, 0, r);
            }
        }

        RedisValue[] arguments = SeenSets.Arguments(_batch, positions.AsSpan(0, count), Prefix, Database, 691200, out RedisKey[] sets);
        SeenSets.Return(positions);
        return arguments.Length + sets.Length;
    }

    private static void Append(ref Span<byte> destination, scoped ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(destination);
        destination = destination[bytes.Length..];
    }

    private static int CountRemembered(ParsedWebhook webhook)
    {
        int count = 0;
        foreach (ref readonly StagedRecord record in webhook.Records)
        {
            count += IsRemembered(in record) ? 1 : 0;
        }

        return count;
    }

    private static bool IsRemembered(in StagedRecord record) =>
        record.Kind == RecordKind.Status || (record.Kind == RecordKind.Message && record.Origin != MessageOrigin.History);
}
