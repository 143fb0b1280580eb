using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;

namespace Memo.Ingest.Webhooks;

internal static class WebhookEndpoints
{
    public const string Path = "/webhooks/whatsapp";

    public static IEndpointRouteBuilder MapWhatsAppWebhooks(this IEndpointRouteBuilder app)
    {
        WebhookReceiver receiver = app.ServiceProvider.GetRequiredService<WebhookReceiver>();
        app.MapGet(Path, receiver.VerifyAsync);
        app.MapPost(Path, receiver.ReceiveAsync);
        return app;
    }
}
