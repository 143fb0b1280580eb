using System.Net.WebSockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Memo.Ingest.Load.Ceilings;

/// <summary>
/// The broadcast ceiling: a bare Kestrel WebSocket server that sends the same 300-byte text frame to every connected
/// client as fast as each connection takes it, and clients in this process that count what they receive. Nothing
/// else runs: no database, no event log, no per-client cursor. Deliveries per second across all clients is the most
/// this machine can push through WebSockets with the client fleet sharing its cores.
/// </summary>
internal static class BareBroadcast
{
    public static async Task<double> DeliveriesPerSecondAsync(int port, int clients, TimeSpan duration)
    {
        byte[] frame = new byte[300];
        Array.Fill(frame, (byte)'x');
        using var stop = new CancellationTokenSource();
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Logging.ClearProviders();
        await using WebApplication app = builder.Build();
        app.UseWebSockets();
        app.Map("/ws", async context =>
        {
            using WebSocket socket = await context.WebSockets.AcceptWebSocketAsync();
            try
            {
                for (long sent = 1; !stop.IsCancellationRequested; sent++)
                {
                    await socket.SendAsync(frame, WebSocketMessageType.Text, endOfMessage: true, stop.Token);
                    if (sent % 32 == 0)
                    {
                        // Sends complete synchronously while the socket buffer has room: yield now and then, or a
                        // thousand loops own the thread pool and the clients never get to read.
                        await Task.Yield();
                    }
                }
            }
            catch (Exception e) when (e is OperationCanceledException or WebSocketException)
            {
            }
        });
        await app.StartAsync();

        long received = 0;
        var sockets = new List<ClientWebSocket>();
        for (int i = 0; i < clients; i++)
        {
            var socket = new ClientWebSocket();
            await socket.ConnectAsync(new Uri($"ws://127.0.0.1:{port}/ws"), CancellationToken.None);
            sockets.Add(socket);
        }

        using var measuring = new CancellationTokenSource(duration);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await Task.WhenAll(sockets.Select(socket => Task.Run(async () =>
        {
            byte[] buffer = new byte[4096];
            try
            {
                while (true)
                {
                    ValueWebSocketReceiveResult result = await socket.ReceiveAsync(buffer.AsMemory(), measuring.Token);
                    if (result.EndOfMessage)
                    {
                        Interlocked.Increment(ref received);
                    }
                }
            }
            catch (Exception e) when (e is OperationCanceledException or WebSocketException)
            {
            }
        })));
        double perSecond = Interlocked.Read(ref received) / clock.Elapsed.TotalSeconds;
        await stop.CancelAsync();
        foreach (ClientWebSocket socket in sockets)
        {
            socket.Abort();
            socket.Dispose();
        }

        await app.StopAsync();
        return perSecond;
    }
}
