using System.Globalization;
using System.Text;
using Memo.Ingest.TestSupport;

namespace Memo.Ingest.Load.ClosedLoop;

/// <summary>
/// A closed loop against a receiver that is already running (a gateway started by hand, for profiling): fresh signed
/// text messages over 8 accounts, signed with the test secret.
/// </summary>
internal static class ClosedLoopCommand
{
    public static async Task<int> RunAsync(Uri receiver, int connections, int messagesPerPost, int seconds, TextWriter output)
    {
        string run = Guid.NewGuid().ToString("N")[..8];
        using var sender = new ClosedLoopSender(receiver, connections, n => Encoding.UTF8.GetBytes(WebhookPayloads.Envelope($"PNloop{n % 8}",
            messages: Enumerable.Range(0, messagesPerPost).Select(m => WebhookPayloads.TextMessage(
                string.Create(CultureInfo.InvariantCulture, $"wamid.HBgLMTU1NTAwMDAxMTEVAgASGBQzQUZCNkY4.{run}.{n}.{m}"),
                string.Create(CultureInfo.InvariantCulture, $"4917{(n * 7 + m) % 500:D6}"), 1700000000 + n, "Hello, is this still available?")))),
            GatewayHost.Secret);
        ClosedLoopResult result = await sender.RunAsync(TimeSpan.FromSeconds(seconds), messagesPerPost);
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"{result.Acknowledged} POSTs answered 200 ({result.Failed} not), {result.MessagesPerSecond:F0} messages/s, {result.Latency}"));
        return 0;
    }
}
