using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;

namespace Memo.Ingest.Load;

/// <summary>
/// Sums every measurement of one gateway host's instruments (by instrument name and, for counters, by the value of
/// their first tag), so that a run can report what the gateway itself measured.
/// </summary>
internal sealed class MetricTotals : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly Dictionary<string, (double Sum, long Count)> _totals = [];

    public MetricTotals(IServiceProvider services)
    {
        object factory = services.GetRequiredService<IMeterFactory>();
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter.Scope, factory))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Add(instrument, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Add(instrument, value, tags));
        _listener.Start();
    }

    /// <summary>Sum and number of measurements of <paramref name="name"/> (optionally only those whose first tag has <paramref name="tagValue"/>).</summary>
    public (double Sum, long Count) this[string name, string? tagValue = null]
    {
        get
        {
            lock (_totals)
            {
                return _totals.GetValueOrDefault(tagValue is null ? name : name + "|" + tagValue);
            }
        }
    }

    public void Reset()
    {
        lock (_totals)
        {
            _totals.Clear();
        }
    }

    public void Dispose() => _listener.Dispose();

    private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        lock (_totals)
        {
            Accumulate(instrument.Name, value);
            if (tags.Length > 0)
            {
                Accumulate(instrument.Name + "|" + tags[0].Value, value);
            }
        }
    }

    private void Accumulate(string key, double value)
    {
        (double sum, long count) = _totals.GetValueOrDefault(key);
        _totals[key] = (sum + value, count + 1);
    }
}
