using System.Buffers.Text;
using System.Diagnostics;
using System.Net.WebSockets;
using Memo.Ingest.Load.Run;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Memo.Ingest.Load.Ceilings;

/// <summary>
/// The broadcast ceiling: a bare Kestrel WebSocket server that sends a 300-byte text frame to every connected client
/// as fast as each connection takes it, and the same subscriber fleet as the gateway's runs (<see cref="SubscriberFleet"/>,
/// WebSockets only) counting what it receives. Nothing else runs: no database, no event log, no per-client cursor. The
/// frames look like stream events to the fleet (a ready message first, then <c>{"type":"event","seq":N,…}</c> with
/// each connection's own N), so that both sides of the ratio are read by the same client at the same cost. Deliveries
/// per second across all clients is the most this machine can push through WebSockets with the fleet sharing its cores.
/// </summary>
internal static class BareBroadcast
{
    private const int FrameBytes = 300;

    public static async Task<double> DeliveriesPerSecondAsync(int port, int clients, TimeSpan duration)
    {
        using var stop = new CancellationTokenSource();
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Logging.ClearProviders();
        await using WebApplication app = builder.Build();
        app.UseWebSockets();
        // The fleet's path; the query and the bearer token are ignored.
        app.Map("/v1/stream/ws", async context =>
        {
            using WebSocket socket = await context.WebSockets.AcceptWebSocketAsync();
            byte[] frame = new byte[FrameBytes];
            try
            {
                await socket.SendAsync("{\"type\":\"ready\"}"u8.ToArray(), WebSocketMessageType.Text, endOfMessage: true, stop.Token);
                for (long sent = 1; !stop.IsCancellationRequested; sent++)
                {
                    Event(frame, sent);
                    await socket.SendAsync(frame, WebSocketMessageType.Text, endOfMessage: true, stop.Token);
                    if (sent % 32 == 0)
                    {
                        // Sends complete synchronously while the socket buffer has room: yield now and then, or a
                        // thousand loops own the thread pool.
                        await Task.Yield();
                    }
                }
            }
            catch (Exception e) when (e is OperationCanceledException or WebSocketException or IOException)
            {
            }
        });
        await app.StartAsync();

        double perSecond;
        await using (SubscriberFleet fleet = await SubscriberFleet.ConnectAsync(new Uri($"http://127.0.0.1:{port}"), ["bare"], clients,
            Stopwatch.StartNew(), webSocketsOnly: true))
        {
            long before = fleet.Events;
            var clock = Stopwatch.StartNew();
            await Task.Delay(duration);
            perSecond = (fleet.Events - before) / clock.Elapsed.TotalSeconds;
            if (fleet.OrderViolations > 0)
            {
                throw new InvalidOperationException($"The bare broadcast's frames arrived out of order ({fleet.OrderViolations}).");
            }
        }

        await stop.CancelAsync();
        await app.StopAsync();
        return perSecond;
    }

    /// <summary><c>{"type":"event","seq":N,"pad":"xx…"}</c>, <see cref="FrameBytes"/> long whatever N's digits.</summary>
    private static void Event(byte[] frame, long seq)
    {
        Span<byte> span = frame;
        ReadOnlySpan<byte> head = "{\"type\":\"event\",\"seq\":"u8;
        ReadOnlySpan<byte> pad = ",\"pad\":\""u8;
        head.CopyTo(span);
        int at = head.Length;
        Utf8Formatter.TryFormat(seq, span[at..], out int digits);
        at += digits;
        pad.CopyTo(span[at..]);
        at += pad.Length;
        span[at..^2].Fill((byte)'x');
        "\"}"u8.CopyTo(span[^2..]);
    }
}
