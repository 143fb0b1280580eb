using System.Globalization;
using System.Text;
using Memo.Ingest.TestSupport;

namespace Memo.Ingest.Load.Run;

/// <summary>
/// The bodies of a run, as a pure function of the request index, so a duplicate is simply an earlier index built
/// again and the loss check can list every message a request carried. A POST is for one account and carries either
/// <see cref="RunSettings.MessagesPerPost"/> inbound messages (<see cref="RunSettings.TextShare"/> text, the rest every other type) or status
/// updates that move outbound messages through sent, delivered and read. Text bodies carry their send time
/// (<c>t=µs;</c> since the run started), from which subscribers measure webhook-to-event latency.
/// </summary>
internal sealed partial class PayloadMix(RunSettings settings)
{
    private static readonly string[] OtherTypes = [.. WebhookPayloads.MessageOfEveryType("wamid.x", "4915", 0)
        .Where(static m => m.Type != "text").Select(static m => m.Json)];

    public string[] Accounts { get; } = [.. Enumerable.Range(0, settings.Accounts).Select(static i => $"PNload{i:D3}")];

    /// <summary>What request <paramref name="index"/> is: a duplicate of an earlier one, statuses, or new messages.</summary>
    public (long Original, bool Statuses) Kind(long index)
    {
        ulong hash = Mix(index);
        double unit = (hash >> 11) * (1.0 / (1UL << 53));
        if (index > 10 && unit < settings.DuplicateRatio)
        {
            // A repeat of an earlier request, itself resolved to the request it repeats.
            return Kind((long)(Mix(index ^ 0x5bd1e995) % (ulong)index));
        }

        return (index, unit < settings.DuplicateRatio + settings.StatusRatio);
    }

    public string AccountOf(long index) => Accounts[(int)(Kind(index).Original % Accounts.Length)];

    /// <summary>The inbound message ids request <paramref name="index"/> carries (none for a status POST).</summary>
    public IEnumerable<string> MessageIds(long index)
    {
        (long original, bool statuses) = Kind(index);
        return statuses ? [] : Enumerable.Range(0, settings.MessagesPerPost).Select(m => $"wamid.load.{original}.{m}");
    }

    /// <summary>How many inbound messages request <paramref name="index"/> carries (none for a status POST).</summary>
    public int MessageCount(long index) => Kind(index).Statuses ? 0 : settings.MessagesPerPost;

    /// <summary>The outbound message ids request <paramref name="index"/> reports statuses for (none for messages).</summary>
    public IEnumerable<string> OutboundIds(long index)
    {
        (long original, bool statuses) = Kind(index);
        return statuses ? Enumerable.Range(0, Math.Min(settings.MessagesPerPost, 10)).Select(m => $"wamid.out.{original / 3}.{m}") : [];
    }

    public byte[] Body(long index, long sentMicroseconds)
    {
        (long original, bool statuses) = Kind(index);
        string account = AccountOf(index);
        const long Ts = 1700000000;
        string json;
        if (statuses)
        {
            // Three POSTs in a row move the same outbound messages through sent, delivered, read.
            string status = (original % 3) switch { 0 => "sent", 1 => "delivered", _ => "read" };
            json = WebhookPayloads.Envelope(account, statuses: OutboundIds(index).Select(id => WebhookPayloads.Status(id, status, Ts + original, "4917000001")));
        }
        else
        {
            json = WebhookPayloads.Envelope(account,
                messages: MessageIds(index).Select((id, m) => m % 10 < (int)Math.Round(settings.TextShare * 10) || OtherTypes.Length == 0
                    ? WebhookPayloads.TextMessage(id, "4917000001", Ts + original, string.Create(CultureInfo.InvariantCulture, $"t={sentMicroseconds};hello {original}"))
                    : OtherId().Replace(OtherTypes[m % OtherTypes.Length], $"\"id\":\"{id}\"", 1)),
                contacts: [WebhookPayloads.Contact("4917000001", "Load Test")]);
        }

        return Encoding.UTF8.GetBytes(json);
    }

    [System.Text.RegularExpressions.GeneratedRegex("\"id\":\"wamid\\.x-[^\"]*\"")]
    private static partial System.Text.RegularExpressions.Regex OtherId();

    private static ulong Mix(long value)
    {
        // SplitMix64: a cheap, well-spread hash, so every index's kind is fixed and reproducible.
        ulong z = (ulong)value + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
