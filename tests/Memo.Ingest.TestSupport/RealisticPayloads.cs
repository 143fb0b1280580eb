using System.Buffers;
using System.Text;

namespace Memo.Ingest.TestSupport;

/// <summary>
/// Realistic bodies for benchmarks, allocation budgets and load: one typical single-message webhook of about 1.5 KB
/// (a text message with its contact, as Meta sends it), a batch of 100 mixed messages (every type, statuses and
/// contacts), and a 1 MB batch.
/// </summary>
public static class RealisticPayloads
{
    public const string Secret = "realistic-app-secret";

    public static byte[] Typical { get; } = Build(1, targetBytes: 1536);

    public static byte[] Mixed100 { get; } = Build(100, targetBytes: 0);

    public static byte[] OneMegabyte { get; } = Build(100, targetBytes: 1 << 20);

    public static string SignatureOf(byte[] body) => WebhookSigner.Sign(body, Secret);

    /// <summary>The body in 4 KiB segments, as Kestrel's pipe hands over a large body.</summary>
    public static ReadOnlySequence<byte> Segmented(byte[] body) => Segments.Create([.. body.Chunk(4096)]);

    private static byte[] Build(int messages, int targetBytes)
    {
        const long Ts = 1700000000;
        var everyType = WebhookPayloads.MessageOfEveryType("wamid.bench", "4915112345678", Ts).Select(static m => m.Json).ToArray();
        string Body(string padding) => WebhookPayloads.Envelope("106540352242922",
            messages: messages == 1
                ? [WebhookPayloads.TextMessage("wamid.HBgLNDkxNTExMjM0NTY3OBUCABIYFDNBMDhGMTQ0QkIyQzQ2QTM2MjQ2AA==", "4915112345678", Ts, "Hello! Is my order on its way?" + padding)]
                : Enumerable.Range(0, messages).Select(i => i % 10 == 9
                    ? WebhookPayloads.TextMessage($"wamid.bench.{i}", "4915112345678", Ts + i, "batch message " + i + padding)
                    : everyType[i % everyType.Length].Replace("wamid.bench", $"wamid.bench.{i}", StringComparison.Ordinal)),
            statuses: messages == 1 ? null : [WebhookPayloads.Status("wamid.out.1", "delivered", Ts, "4915112345678", withPricing: true)],
            contacts: [WebhookPayloads.Contact("4915112345678", "Jörg Müller")]);

        string body = Body("");
        if (targetBytes > 0 && Encoding.UTF8.GetByteCount(body) < targetBytes)
        {
            int missing = targetBytes - Encoding.UTF8.GetByteCount(body);
            int each = messages == 1 ? missing : Math.Max(1, missing / (messages / 10));
            body = Body(new string('x', each));
        }

        return Encoding.UTF8.GetBytes(body);
    }
}
