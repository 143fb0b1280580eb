using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Memo.Ingest.Inbox;

/// <summary>
/// <c>GET /inbox</c>: a live inbox page (plain HTML, CSS and JavaScript, embedded in the binary; no build step). It
/// holds no secret: the user pastes a read token, and the page follows one account over SSE.
/// </summary>
internal static class InboxEndpoints
{
    private static readonly (string Path, string Resource, string ContentType)[] Files =
    [
        ("/inbox", "Inbox/inbox.html", "text/html; charset=utf-8"),
        ("/inbox/inbox.js", "Inbox/inbox.js", "text/javascript; charset=utf-8"),
        ("/inbox/inbox.css", "Inbox/inbox.css", "text/css; charset=utf-8"),
    ];

    public static IEndpointRouteBuilder MapInbox(this IEndpointRouteBuilder app)
    {
        Assembly assembly = typeof(InboxEndpoints).Assembly;
        foreach ((string path, string resource, string contentType) in Files)
        {
            using Stream stream = assembly.GetManifestResourceStream(resource)
                ?? throw new InvalidOperationException($"Embedded resource {resource} is missing.");
            byte[] content = new byte[stream.Length];
            stream.ReadExactly(content);
            app.MapGet(path, context =>
            {
                context.Response.ContentType = contentType;
                // Only our own script and style; the page talks to this gateway only.
                context.Response.Headers.ContentSecurityPolicy = "default-src 'self'; connect-src 'self'; frame-ancestors 'none'";
                context.Response.Headers.XContentTypeOptions = "nosniff";
                return context.Response.Body.WriteAsync(content).AsTask();
            });
        }

        return app;
    }
}
