using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;

namespace Memo.Ingest.TestSupport;

/// <summary>
/// Reads one counter of one gateway host (its own <see cref="IMeterFactory"/>, so other hosts in the same test
/// process do not count), by the value of one tag. Works for counters (measurements are summed) and observable
/// counters (which report their running total when read).
/// </summary>
public sealed class CounterRecorder : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly Dictionary<string, long> _totals = [];
    private readonly string _tag;

    public CounterRecorder(IServiceProvider services, string instrument, string tag)
    {
        _tag = tag;
        object factory = services.GetRequiredService<IMeterFactory>();
        _listener.InstrumentPublished = (published, listener) =>
        {
            if (published.Name == instrument && ReferenceEquals(published.Meter.Scope, factory))
            {
                listener.EnableMeasurementEvents(published);
            }
        };
        _listener.SetMeasurementEventCallback<long>(OnMeasurement);
        _listener.Start();
    }

    /// <summary>The count for measurements whose tag had <paramref name="value"/> ("" for untagged ones).</summary>
    public long this[string value]
    {
        get
        {
            _listener.RecordObservableInstruments();
            lock (_totals)
            {
                return _totals.GetValueOrDefault(value);
            }
        }
    }

    public void Dispose() => _listener.Dispose();

    private void OnMeasurement(Instrument instrument, long measurement, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? state)
    {
        string value = "";
        foreach (KeyValuePair<string, object?> tag in tags)
        {
            if (tag.Key == _tag)
            {
                value = tag.Value?.ToString() ?? "";
            }
        }

        lock (_totals)
        {
            _totals[value] = instrument.IsObservable ? measurement : _totals.GetValueOrDefault(value) + measurement;
        }
    }
}
