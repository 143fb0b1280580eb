using System.Text;

namespace Memo.Ingest.TestSupport;

/// <summary>
/// A seeded mutation fuzzer over valid webhook bodies (every message type, statuses, contacts, batches): each input
/// is a valid body with one to four mutations (bit flips, structural bytes, deletions, duplications, truncation,
/// hostile tokens such as lone surrogates, huge numbers and deep nesting). Bodies are signed by the caller, so the
/// mutations reach the parser and the writers rather than stopping at the signature check.
/// </summary>
public sealed class WebhookFuzzer
{
    private static readonly byte[] InterestingBytes = "\"\\{}[],:0-e.tfn \0"u8.ToArray().Concat((byte[])[0xFF, 0xC0, 0xED, 0x80, 0x7F, 0x01]).ToArray();

    private static readonly string[] HostileTokens =
    [
        "\\ud800", "\\udfff", "\\u0000", "1e309", "-1e309", "99999999999999999999999999", "-0", "0.0000000000000000001",
        "null", "true", "[]", "{}", "\"\"", "\"a\"", "\\\"", "\\\\", "NaN", new string('[', 2000), new string('{', 100),
        "\"id\":\"x\",\"id\":\"y\"", "\"timestamp\":\"-1\"", "\"timestamp\":\"99999999999999999999\"", "\"status\":\"exploded\"",
    ];

    private readonly Random _random;
    private readonly byte[][] _seeds;

    public WebhookFuzzer(int seed)
    {
        _random = new Random(seed);
        _seeds = [.. SeedBodies().Select(Encoding.UTF8.GetBytes)];
    }

    /// <summary>The next mutated body.</summary>
    public byte[] Next()
    {
        byte[] body = _seeds[_random.Next(_seeds.Length)];
        int mutations = 1 + _random.Next(4);
        for (int i = 0; i < mutations; i++)
        {
            body = Mutate(body);
        }

        return body;
    }

    private byte[] Mutate(byte[] body)
    {
        if (body.Length == 0)
        {
            return [(byte)'{'];
        }

        int at = _random.Next(body.Length);
        switch (_random.Next(8))
        {
            case 0:
                byte[] flipped = [.. body];
                flipped[at] ^= (byte)(1 << _random.Next(8));
                return flipped;
            case 1:
                byte[] replaced = [.. body];
                replaced[at] = InterestingBytes[_random.Next(InterestingBytes.Length)];
                return replaced;
            case 2:
                int deleted = Math.Min(body.Length - at, 1 + _random.Next(32));
                return [.. body[..at], .. body[(at + deleted)..]];
            case 3:
                int copied = Math.Min(body.Length - at, 1 + _random.Next(64));
                int to = _random.Next(body.Length);
                return [.. body[..to], .. body[at..(at + copied)], .. body[to..]];
            case 4:
                return body[..at];
            case 5:
                byte[] token = Encoding.UTF8.GetBytes(HostileTokens[_random.Next(HostileTokens.Length)]);
                return [.. body[..at], .. token, .. body[at..]];
            case 6:
                // Replace the value after a quote-colon with a hostile token, keeping the rest well-formed more often.
                int colon = Array.IndexOf(body, (byte)':', at);
                if (colon < 0)
                {
                    goto case 5;
                }

                int end = colon + 1;
                while (end < body.Length && body[end] is not ((byte)',' or (byte)'}' or (byte)']'))
                {
                    end++;
                }

                byte[] value = Encoding.UTF8.GetBytes(HostileTokens[_random.Next(HostileTokens.Length)]);
                return [.. body[..(colon + 1)], .. value, .. body[end..]];
            default:
                // A random run of bytes, most of them ASCII.
                byte[] noise = new byte[1 + _random.Next(16)];
                _random.NextBytes(noise);
                return [.. body[..at], .. noise, .. body[at..]];
        }
    }

    private static IEnumerable<string> SeedBodies()
    {
        const long Ts = 1700000000;
        foreach ((string _, string json, string? _) in WebhookPayloads.MessageOfEveryType("wamid.fuzz", "4917", Ts))
        {
            yield return WebhookPayloads.Envelope("PNfuzz1", messages: [json], contacts: [WebhookPayloads.Contact("4917", "Fuzz")]);
        }

        yield return WebhookPayloads.Envelope("PNfuzz2", statuses:
        [
            WebhookPayloads.Status("wamid.out1", "sent", Ts, "4918"),
            WebhookPayloads.Status("wamid.out1", "delivered", Ts + 1, "4918", withPricing: true),
            WebhookPayloads.Status("wamid.out2", "failed", Ts + 2, "4918", withErrors: true),
        ]);
        yield return WebhookPayloads.Envelope("PNfuzz3",
            messages: [.. Enumerable.Range(0, 20).Select(static i => WebhookPayloads.TextMessage($"wamid.batch.{i}", "4919", Ts + i, $"message {i} \\u00e9\\ud83d\\ude00"))]);
    }
}
