using System.Threading.Tasks.Sources;
using Memo.Ingest.Ingest;
using Microsoft.Extensions.ObjectPool;

namespace Memo.Ingest.Webhooks.Parsing;

/// <summary>
/// Everything one webhook POST carries into the pipeline: its raw body, the records parsed from it (in an arena), and
/// the completion the request awaits until the records are committed. Instances are pooled and reused, which is
/// why the completion is a resettable <see cref="IValueTaskSource{TResult}"/> rather than a fresh Task per request.
/// </summary>
internal sealed class ParsedWebhook : IValueTaskSource<IngestOutcome>, IResettable
{
    private StagedRecord[] _records = new StagedRecord[16];
    private ManualResetValueTaskSourceCore<IngestOutcome> _completion = new() { RunContinuationsAsynchronously = true };
    private int _completed;

    public Utf8Arena Arena { get; } = new();

    /// <summary>The request body, read into a pooled buffer before the signature check.</summary>
    public PooledBuffer Body { get; } = new();

    public int Count { get; private set; }

    public ReadOnlySpan<StagedRecord> Records => _records.AsSpan(0, Count);

    /// <summary>Whether any record belongs to a history backfill (a message of it, or its progress).</summary>
    public bool CarriesHistory
    {
        get
        {
            foreach (ref readonly StagedRecord record in Records)
            {
                if (record.Kind == RecordKind.HistorySync || record.Kind == RecordKind.Message && record.Origin == MessageOrigin.History)
                {
                    return true;
                }
            }

            return false;
        }
    }

    public ref StagedRecord this[int index] => ref _records[index];

    public ref StagedRecord Add(RecordKind kind)
    {
        if (Count == _records.Length)
        {
            Array.Resize(ref _records, _records.Length * 2);
        }

        ref StagedRecord record = ref _records[Count++];
        record = default;
        record.Kind = kind;
        return ref record;
    }

    /// <summary>Drops records added after <paramref name="count"/> (used when a change turns out not to be messages).</summary>
    public void Truncate(int count) => Count = count;

    /// <summary>The value the request awaits; valid until <see cref="TryComplete"/> has completed it.</summary>
    public ValueTask<IngestOutcome> Completion => new(this, _completion.Version);

    /// <summary>
    /// Completes the request's wait with <paramref name="outcome"/>; only the first call counts (a writer that fails
    /// after answering some webhooks of its batch must not answer them twice). Returns whether this call did.
    /// </summary>
    public bool TryComplete(IngestOutcome outcome)
    {
        if (Interlocked.Exchange(ref _completed, 1) != 0)
        {
            return false;
        }

        _completion.SetResult(outcome);
        return true;
    }

    public bool TryReset()
    {
        Count = 0;
        if (_records.Length > 1024)
        {
            _records = new StagedRecord[16];
        }

        Arena.Reset();
        Body.Reset();
        _completion.Reset();
        _completed = 0;
        return true;
    }

    IngestOutcome IValueTaskSource<IngestOutcome>.GetResult(short token) => _completion.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<IngestOutcome>.GetStatus(short token) => _completion.GetStatus(token);

    void IValueTaskSource<IngestOutcome>.OnCompleted(
        Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _completion.OnCompleted(continuation, state, token, flags);
}
