using System.Buffers;
using OpenTelemetry;
using OpenTelemetry.Metrics;

namespace Memo.Metrics.Prometheus;

/// <summary>
/// A pull exporter: nothing is rendered until a scrape asks. <see cref="Scrape"/> makes the SDK collect (which calls
/// <see cref="Export"/> synchronously with every metric) and renders the text into a buffer kept between scrapes, so
/// an idle gateway pays nothing and a scrape allocates little beyond the first.
/// </summary>
[ExportModes(ExportModes.Pull)]
public sealed class PrometheusTextExporter : BaseExporter<Metric>, IPullMetricExporter
{
    /// <summary>The media type of the text exposition format this exporter writes.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private readonly Lock _scrapeLock = new();
    private readonly ArrayBufferWriter<byte> _text = new(64 * 1024);
    private readonly HashSet<string> _written = [];

    /// <summary>Set by the SDK when this exporter's reader is added to a meter provider.</summary>
    public Func<int, bool>? Collect { get; set; }

    /// <summary>
    /// Collects and renders every metric, then hands the text to <paramref name="consume"/> while no other scrape can
    /// change it. Returns false when the meter provider is gone or collection timed out.
    /// </summary>
    public bool Scrape<TState>(TState state, Action<ReadOnlyMemory<byte>, TState> consume, int timeoutMilliseconds = 5000)
    {
        ArgumentNullException.ThrowIfNull(consume);
        lock (_scrapeLock)
        {
            _text.ResetWrittenCount();
            _written.Clear();
            if (Collect is not { } collect || !collect(timeoutMilliseconds))
            {
                return false;
            }

            consume(_text.WrittenMemory, state);
            return true;
        }
    }

    public override ExportResult Export(in Batch<Metric> batch)
    {
        foreach (Metric metric in batch)
        {
            // Two meters may define an instrument of the same name; Prometheus allows one family per name.
            if (_written.Add(metric.Name))
            {
                PrometheusTextWriter.Write(_text, metric);
            }
        }

        return ExportResult.Success;
    }
}
