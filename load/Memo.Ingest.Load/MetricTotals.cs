using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;

namespace Memo.Ingest.Load;

/// <summary>
/// Sums every measurement of one gateway host's instruments (by instrument name and by the value of their first tag),
/// so that a run can report what the gateway itself measured. Observable counters report running totals: for them
/// the value is the total now minus the total at the last <see cref="Reset"/>.
/// </summary>
internal sealed class MetricTotals : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly Dictionary<string, (double Sum, long Count)> _totals = [];
    private readonly Dictionary<string, double> _observed = [];
    private readonly Dictionary<string, double> _baseline = [];

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
            _listener.RecordObservableInstruments();
            string key = tagValue is null ? name : name + "|" + tagValue;
            lock (_totals)
            {
                return _observed.TryGetValue(key, out double total)
                    ? (total - _baseline.GetValueOrDefault(key), 1)
                    : _totals.GetValueOrDefault(key);
            }
        }
    }

    public void Reset()
    {
        _listener.RecordObservableInstruments();
        lock (_totals)
        {
            _totals.Clear();
            _baseline.Clear();
            foreach ((string key, double total) in _observed)
            {
                _baseline[key] = total;
            }
        }
    }

    public void Dispose() => _listener.Dispose();

    private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        lock (_totals)
        {
            if (instrument.IsObservable)
            {
                _observed[tags.Length > 0 ? instrument.Name + "|" + tags[0].Value : instrument.Name] = value;
                return;
            }

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
