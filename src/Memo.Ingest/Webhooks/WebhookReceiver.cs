using System.Diagnostics;
using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Text;
using Memo.Ingest.Configuration;
using Memo.Ingest.Ingest;
using Memo.Ingest.Observability;
using Memo.Ingest.Webhooks.Parsing;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.ObjectPool;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace Memo.Ingest.Webhooks;

/// <summary>
/// <c>/webhooks/whatsapp</c>. GET answers Meta's verification handshake; POST reads the raw body into a pooled buffer,
/// checks the signature over those exact bytes, parses them, and answers 200 only once every record is committed
/// (developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/create-webhook-endpoint); "committed"
/// means durably appended to the inbox, from where the sequencers make it visible (docs/API.md).
/// </summary>
internal sealed partial class WebhookReceiver
{
    // Meta's challenge is an opaque token of a few digits; a bound keeps the endpoint from echoing large input.
    private const int MaxChallengeLength = 256;

    private readonly WebhookSignatureVerifier _verifier;
    private readonly IngestPipeline _pipeline;
    private readonly ObjectPool<ParsedWebhook> _pool;
    private readonly IngestMetrics _metrics;
    private readonly ILogger _logger;
    private readonly byte[]? _verifyToken;
    private readonly int _maxBodyBytes;
    private readonly string _retryAfter;

    public WebhookReceiver(WebhookSignatureVerifier verifier, IngestPipeline pipeline, ObjectPool<ParsedWebhook> pool,
        IOptions<WhatsAppOptions> whatsApp, IOptions<IngestOptions> ingest, IngestMetrics metrics, ILogger<WebhookReceiver> logger)
    {
        _verifier = verifier;
        _pipeline = pipeline;
        _pool = pool;
        _metrics = metrics;
        _logger = logger;
        _verifyToken = string.IsNullOrEmpty(whatsApp.Value.VerifyToken) ? null : Encoding.UTF8.GetBytes(whatsApp.Value.VerifyToken);
        _maxBodyBytes = ingest.Value.MaxBodyBytes;
        _retryAfter = ingest.Value.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    public Task VerifyAsync(HttpContext context)
    {
        IQueryCollection query = context.Request.Query;
        string? challenge = query["hub.challenge"];
        if (_verifyToken is not null &&
            query["hub.mode"] == "subscribe" &&
            !string.IsNullOrEmpty(challenge) && challenge.Length <= MaxChallengeLength &&
            TokenMatches(query["hub.verify_token"]))
        {
            Log.VerificationSucceeded(_logger);
            context.Response.ContentType = "text/plain; charset=utf-8";
            return context.Response.WriteAsync(challenge);
        }

        Log.VerificationFailed(_logger);
        return RejectAsync(context, WebhookRejectionReason.VerificationFailed, Stopwatch.GetTimestamp());
    }

    private bool TokenMatches(string? presented)
    {
        if (string.IsNullOrEmpty(presented) || presented.Length > 1024)
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[Encoding.UTF8.GetMaxByteCount(presented.Length)];
        int length = Encoding.UTF8.GetBytes(presented, bytes);
        return CryptographicOperations.FixedTimeEquals(bytes[..length], _verifyToken);
    }

    public async Task ReceiveAsync(HttpContext context)
    {
        long started = Stopwatch.GetTimestamp();
        HttpRequest request = context.Request;
        WebhookRejectionReason reason = CheckHeaders(request);
        if (reason != WebhookRejectionReason.None)
        {
            await RejectAsync(context, reason, started);
            return;
        }

        if (_pipeline.ShedsArrival())
        {
            // 503 before the body is read: it says nothing to an unsigned sender, and Kestrel drains the body.
            await AnswerAsync(context, IngestOutcome.Saturated, started);
            return;
        }

        ParsedWebhook webhook = _pool.Get();
        try
        {
            reason = await ReadBodyAsync(request, webhook.Body, context.RequestAborted);
            if (reason == WebhookRejectionReason.None)
            {
                reason = _verifier.Verify(webhook.Body.Span, request.Headers["X-Hub-Signature-256"].ToString());
            }

            if (reason == WebhookRejectionReason.None)
            {
                reason = WebhookPayloadReader.Parse(webhook.Body.Span, webhook);
            }

            if (reason != WebhookRejectionReason.None)
            {
                await RejectAsync(context, reason, started);
                return;
            }

            // Not cancellable on purpose: once queued, the writer owns the webhook's buffers until it completes it.
            IngestOutcome outcome = webhook.Count == 0 ? IngestOutcome.Committed : await _pipeline.SubmitAsync(webhook);
            await AnswerAsync(context, outcome, started);
        }
        catch (BadHttpRequestException e)
        {
            // Kestrel refused the body itself (over its size limit, bad chunking, too slow a sender).
            await RejectAsync(context, e.StatusCode == StatusCodes.Status413PayloadTooLarge ? WebhookRejectionReason.BodyTooLarge : WebhookRejectionReason.MalformedJson, started);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ConnectionAbortedException)
        {
            // The sender went away before we answered; nothing was queued, so nothing needs undoing.
            Log.ClientAborted(_logger);
        }
        finally
        {
            _pool.Return(webhook);
        }
    }

    private WebhookRejectionReason CheckHeaders(HttpRequest request)
    {
        if (request.ContentLength > DrainLimit(_maxBodyBytes))
        {
            // Too large even to drain: refuse at once (Kestrel then closes the connection).
            return WebhookRejectionReason.BodyTooLarge;
        }

        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out MediaTypeHeaderValue? mediaType) ||
            !mediaType.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase))
        {
            return WebhookRejectionReason.UnsupportedMediaType;
        }

        string? encoding = request.Headers.ContentEncoding;
        if (!string.IsNullOrEmpty(encoding) && !encoding.Equals("identity", StringComparison.OrdinalIgnoreCase))
        {
            return WebhookRejectionReason.UnsupportedContentEncoding;
        }

        return WebhookRejectionReason.None;
    }

    /// <summary>
    /// Kestrel's hard body limit. Bodies between our limit and this are read and discarded before the 413, because a
    /// server that answers early and closes a connection with unread bytes makes TCP reset it, and the sender may
    /// never see the 413. Beyond this, Kestrel refuses the body itself.
    /// </summary>
    public static long DrainLimit(int maxBodyBytes) => 2L * maxBodyBytes;

    /// <summary>Copies the body from Kestrel's <see cref="PipeReader"/> into the pooled buffer, up to the limit.</summary>
    private async ValueTask<WebhookRejectionReason> ReadBodyAsync(HttpRequest request, PooledBuffer body, CancellationToken cancellationToken)
    {
        if (request.ContentLength is long declared && declared <= _maxBodyBytes)
        {
            body.GetSpan((int)declared);
        }

        PipeReader reader = request.BodyReader;
        bool tooLarge = false;
        while (true)
        {
            ReadResult result = await reader.ReadAsync(cancellationToken);
            System.Buffers.ReadOnlySequence<byte> buffer = result.Buffer;
            tooLarge |= body.Length + buffer.Length > _maxBodyBytes;
            if (!tooLarge)
            {
                foreach (ReadOnlyMemory<byte> segment in buffer)
                {
                    segment.Span.CopyTo(body.GetSpan(segment.Length));
                    body.Advance(segment.Length);
                }
            }

            reader.AdvanceTo(buffer.End);
            if (result.IsCompleted)
            {
                return tooLarge ? WebhookRejectionReason.BodyTooLarge : WebhookRejectionReason.None;
            }
        }
    }

    private Task AnswerAsync(HttpContext context, IngestOutcome outcome, long started)
    {
        switch (outcome)
        {
            case IngestOutcome.Committed:
                context.Response.StatusCode = StatusCodes.Status200OK;
                _metrics.WebhookAnswered(StatusCodes.Status200OK, WebhookRejectionReason.None, Stopwatch.GetElapsedTime(started));
                return Task.CompletedTask;
            default:
                // Saturated, Backlogged, Unavailable or ShuttingDown: nothing of it is stored by this request; Meta
                // redelivers.
                Log.Unavailable(_logger, outcome);
                _metrics.WebhookAnswered(StatusCodes.Status503ServiceUnavailable, WebhookRejectionReason.None, Stopwatch.GetElapsedTime(started));
                context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                context.Response.Headers.RetryAfter = _retryAfter;
                context.Response.ContentType = "application/json";
                return context.Response.WriteAsync(outcome switch
                {
                    IngestOutcome.Saturated => """{"error":"saturated","message":"The ingest queue is full; retry later."}""",
                    IngestOutcome.ShuttingDown => """{"error":"shutting_down","message":"The gateway is shutting down; retry later."}""",
                    IngestOutcome.Backlogged => """{"error":"backlogged","message":"Acknowledged records are waiting to be sequenced; retry later."}""",
                    _ => """{"error":"unavailable","message":"The database is unavailable; retry later."}""",
                });
        }
    }

    private Task RejectAsync(HttpContext context, WebhookRejectionReason reason, long started)
    {
        int status = WebhookRejections.StatusCode(reason);
        // Hostile or broken input is logged at Debug only, so it cannot flood the logs.
        Log.Rejected(_logger, status, WebhookRejections.Code(reason));
        _metrics.WebhookAnswered(status, reason, Stopwatch.GetElapsedTime(started));
        if (context.Response.HasStarted)
        {
            return Task.CompletedTask;
        }

        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(
            $$"""{"error":"{{WebhookRejections.Code(reason)}}","message":"{{WebhookRejections.Message(reason).Replace("\\", "\\\\", StringComparison.Ordinal)}}"}""");
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 300, EventName = "WebhookRejected", Level = LogLevel.Debug,
            Message = "Webhook rejected with {StatusCode}: {Reason}.")]
        public static partial void Rejected(ILogger logger, int statusCode, string reason);

        [LoggerMessage(EventId = 301, EventName = "WebhookUnavailable", Level = LogLevel.Debug,
            Message = "Webhook answered 503: {Outcome}.")]
        public static partial void Unavailable(ILogger logger, IngestOutcome outcome);

        [LoggerMessage(EventId = 302, EventName = "VerificationSucceeded", Level = LogLevel.Information,
            Message = "Webhook verification handshake succeeded.")]
        public static partial void VerificationSucceeded(ILogger logger);

        [LoggerMessage(EventId = 303, EventName = "VerificationFailed", Level = LogLevel.Debug,
            Message = "Webhook verification handshake refused.")]
        public static partial void VerificationFailed(ILogger logger);

        [LoggerMessage(EventId = 304, EventName = "WebhookClientAborted", Level = LogLevel.Debug,
            Message = "The sender disconnected before the webhook was answered.")]
        public static partial void ClientAborted(ILogger logger);
    }
}
