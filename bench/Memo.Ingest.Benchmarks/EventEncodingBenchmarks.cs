using System.Buffers;
using System.Text;
using BenchmarkDotNet.Attributes;
using Memo.Ingest.Events;
using Memo.Ingest.Ingest;
using Memo.Ingest.Streams;
using Microsoft.AspNetCore.Http;

namespace Memo.Ingest.Benchmarks;

/// <summary>
/// Encoding one committed event on its way out: the event frame (once per event, for the hub and Redis), the MessagePack form
/// (once per event, shared by every MessagePack client), and the SSE frame (once per connection), against the floor of
/// copying the event's JSON into the same pipe.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class EventEncodingBenchmarks
{
    private static readonly byte[] Json = Encoding.UTF8.GetBytes(
        """{"type":"event","account":"106540352242922","seq":18231,"kind":"message.created","data":{"seq":18231,"wamid":"wamid.HBgLNDkxNTExMjM0NTY3OBUCABIYFDNBMDhGMTQ0QkIyQzQ2QTM2MjQ2AA==","direction":"inbound","from":"4915112345678","to":null,"timestamp":1700000000,"type":"text","body":"Hello! Is my order on its way?","context_id":null,"status":"received","status_timestamp":null,"errors":null,"payload":{"from":"4915112345678","id":"wamid.HBgLNDkxNTExMjM0NTY3OBUCABIYFDNBMDhGMTQ0QkIyQzQ2QTM2MjQ2AA==","timestamp":"1700000000","text":{"body":"Hello! Is my order on its way?"},"type":"text"}}}""");

    private readonly ArrayBufferWriter<byte> _frame = new(1024);
    private readonly Dictionary<string, long> _cursors = new() { ["106540352242922"] = 18231 };
    private StreamEvent _event = null!;
    private SseTransport _sse = null!;
    private DefaultHttpContext _context = null!;

    [GlobalSetup]
    public void Setup()
    {
        _event = new StreamEvent("106540352242922", 18231, EventKind.MessageCreated, Json);
        _context = new DefaultHttpContext();
        _context.Response.Body = Stream.Null;
        _sse = new SseTransport(_context);
    }

    [Benchmark(Baseline = true, Description = "copy the event JSON into the response pipe (floor)")]
    public ValueTask<System.IO.Pipelines.FlushResult> CopyJson()
    {
        _context.Response.BodyWriter.Write(Json);
        return _context.Response.BodyWriter.FlushAsync();
    }

    [Benchmark(Description = "SSE frame (id with cursors, event, data) + flush, per connection")]
    public async ValueTask SseFrame()
    {
        await _sse.SendEventAsync(_event, _cursors, CancellationToken.None);
        await _sse.FlushAsync(CancellationToken.None);
    }

    [Benchmark(Description = "MessagePack from the JSON, per event")]
    public byte[] MessagePack() => MessagePackTranscoder.FromJson(Json);

    [Benchmark(Description = "event frame for the hub and Redis, per event (the JSON is encoded once, by the sequencer)")]
    public int EventFrameWrite()
    {
        _frame.ResetWrittenCount();
        EventFrame.WriteHeader(_frame, Guid.Empty);
        int lengthAt = EventFrame.BeginEvent(_frame, "106540352242922", 18231, EventKind.MessageCreated);
        _frame.Write(Json);
        EventFrame.EndEvent(_frame, lengthAt);
        EventFrame.SetCount(_frame, 1);
        return _frame.WrittenCount;
    }
}
