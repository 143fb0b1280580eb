using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace Memo.Ingest.Streams;

/// <summary>
/// Server-Sent Events: <c>id: PN1:42,PN2:7</c> (every account's cursor, so the browser's automatic
/// <c>Last-Event-ID</c> resumes them all), <c>event: message.created</c>, <c>data: {json}</c>. Heartbeats are
/// comments. Control messages are <c>event: ready</c> and <c>event: resync</c>.
/// </summary>
internal sealed class SseTransport(HttpContext context) : IStreamTransport
{
    private readonly PipeWriter _output = context.Response.BodyWriter;

    public ValueTask SendEventAsync(StreamEvent streamEvent, IReadOnlyDictionary<string, long> cursors, CancellationToken cancellationToken)
    {
        Write("id: "u8);
        StreamCursors.Write(_output, cursors);
        Write("\nevent: "u8);
        WriteText(StreamEvent.KindName(streamEvent.Kind));
        Write("\ndata: "u8);
        Write(streamEvent.Json); // JSON written by Utf8JsonWriter has no raw newlines
        Write("\n\n"u8);
        return ValueTask.CompletedTask;
    }

    public ValueTask SendControlAsync(string type, string? reason, IReadOnlyDictionary<string, long> cursors, CancellationToken cancellationToken)
    {
        Write("event: "u8);
        WriteText(type);
        Write("\ndata: "u8);
        StreamControlMessage.Write(_output, type, reason, cursors);
        Write("\n\n"u8);
        return ValueTask.CompletedTask;
    }

    public bool KeepsItselfAlive => false;

    /// <summary>An SSE client sends nothing to answer with: a dead one is found when its writes fail.</summary>
    public bool IsUnresponsive(long now, long timeoutMilliseconds) => false;

    public async ValueTask HeartbeatAsync(CancellationToken cancellationToken)
    {
        Write(": ping\n\n"u8);
        await FlushAsync(cancellationToken);
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        FlushResult result = await _output.FlushAsync(cancellationToken);
        if (result.IsCanceled || result.IsCompleted)
        {
            throw new OperationCanceledException("The client went away.");
        }
    }

    public ValueTask CloseAsync(string reason, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public void Abort() => context.Abort();

    private void Write(ReadOnlySpan<byte> bytes) => _output.Write(bytes);

    private void WriteText(string text)
    {
        Span<byte> span = _output.GetSpan(Encoding.UTF8.GetMaxByteCount(text.Length));
        _output.Advance(Encoding.UTF8.GetBytes(text, span));
    }
}
