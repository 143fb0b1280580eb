using System.Buffers;
using System.IO.Pipelines;
using Memo.Ingest.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Memo.Ingest.Load.Ceilings;

/// <summary>
/// The HTTP ceiling: a Kestrel app whose only endpoint reads the body and checks its X-Hub-Signature-256 (same
/// verifier as the gateway), then answers 200. What the gateway adds on top (parsing, queueing, Redis, PostgreSQL)
/// is the difference to this.
/// </summary>
internal static class BareHmacServer
{
    /// <summary>Runs it in this process until killed (the <c>bare-hmac-receiver</c> command, for a process of its own).</summary>
    public static async Task<int> RunAsync(int port)
    {
        await using WebApplication app = await StartAsync(port);
        await Task.Delay(Timeout.Infinite, app.Lifetime.ApplicationStopping).ContinueWith(static _ => { }, TaskScheduler.Default);
        return 0;
    }

    public static async Task<WebApplication> StartAsync(int port)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Logging.ClearProviders();
        WebApplication app = builder.Build();
        var verifier = new Memo.Ingest.Webhooks.WebhookSignatureVerifier([GatewayHost.Secret]);
        app.MapGet("/healthz", static () => "ok");
        app.MapPost("/webhooks/whatsapp", async context =>
        {
            ReadResult body;
            while (true)
            {
                body = await context.Request.BodyReader.ReadAsync();
                if (body.IsCompleted)
                {
                    break;
                }

                context.Request.BodyReader.AdvanceTo(body.Buffer.Start, body.Buffer.End);
            }

            Memo.Ingest.Webhooks.WebhookRejectionReason reason = verifier.Verify(body.Buffer, context.Request.Headers["X-Hub-Signature-256"].ToString());
            context.Request.BodyReader.AdvanceTo(body.Buffer.End);
            context.Response.StatusCode = reason == Memo.Ingest.Webhooks.WebhookRejectionReason.None ? 200 : 401;
        });
        await app.StartAsync();
        return app;
    }
}
