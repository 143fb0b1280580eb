using System.Buffers;
using System.Buffers.Text;
using System.Globalization;
using System.Text;
using OpenTelemetry.Metrics;

namespace Memo.Metrics.Prometheus;

/// <summary>
/// Renders OpenTelemetry metrics in the Prometheus text exposition format, version 0.0.4: a <c># HELP</c> and
/// <c># TYPE</c> line per metric, then one line per series. Monotonic sums are counters, other sums and gauges are
/// gauges, and explicit-bucket histograms get cumulative <c>_bucket{le=…}</c> lines, <c>_sum</c> and <c>_count</c>.
/// </summary>
internal static class PrometheusTextWriter
{
    public static void Write(IBufferWriter<byte> output, Metric metric)
    {
        MetricType type = metric.MetricType;
        if (type == MetricType.ExponentialHistogram)
        {
            return; // not representable in the 0.0.4 text format
        }

        bool counter = type is MetricType.LongSum or MetricType.DoubleSum;
        bool histogram = type == MetricType.Histogram;
        byte[] name = PrometheusNames.Metric(metric.Name, metric.Unit, counter);

        Append(output, "# HELP "u8);
        Append(output, name);
        Append(output, " "u8);
        AppendEscaped(output, metric.Description ?? "", escapeQuotes: false);
        Append(output, "\n# TYPE "u8);
        Append(output, name);
        Append(output, counter ? " counter\n"u8 : histogram ? " histogram\n"u8 : " gauge\n"u8);

        foreach (ref readonly MetricPoint point in metric.GetMetricPoints())
        {
            if (histogram)
            {
                WriteHistogram(output, name, in point);
                continue;
            }

            WriteSeriesStart(output, name, default, in point, le: default);
            switch (type)
            {
                case MetricType.LongSum or MetricType.LongSumNonMonotonic:
                    AppendNumber(output, point.GetSumLong());
                    break;
                case MetricType.DoubleSum or MetricType.DoubleSumNonMonotonic:
                    AppendNumber(output, point.GetSumDouble());
                    break;
                case MetricType.LongGauge:
                    AppendNumber(output, point.GetGaugeLastValueLong());
                    break;
                default:
                    AppendNumber(output, point.GetGaugeLastValueDouble());
                    break;
            }

            Append(output, "\n"u8);
        }
    }

    private static void WriteHistogram(IBufferWriter<byte> output, byte[] name, in MetricPoint point)
    {
        long cumulative = 0;
        Span<byte> bound = stackalloc byte[32];
        foreach (HistogramBucket bucket in point.GetHistogramBuckets())
        {
            cumulative += bucket.BucketCount;
            int length = double.IsPositiveInfinity(bucket.ExplicitBound) ? Copy("+Inf"u8, bound) : FormatDouble(bucket.ExplicitBound, bound);
            WriteSeriesStart(output, name, "_bucket"u8, in point, bound[..length]);
            AppendNumber(output, cumulative);
            Append(output, "\n"u8);
        }

        WriteSeriesStart(output, name, "_sum"u8, in point, le: default);
        AppendNumber(output, point.GetHistogramSum());
        Append(output, "\n"u8);

        WriteSeriesStart(output, name, "_count"u8, in point, le: default);
        AppendNumber(output, point.GetHistogramCount());
        Append(output, "\n"u8);
    }

    /// <summary>Writes <c>name{suffix}{labels} </c>; the caller writes the value and the newline.</summary>
    private static void WriteSeriesStart(IBufferWriter<byte> output, byte[] name, ReadOnlySpan<byte> suffix, in MetricPoint point, ReadOnlySpan<byte> le)
    {
        Append(output, name);
        Append(output, suffix);
        WriteLabels(output, in point, le);
        Append(output, " "u8);
    }

    private static void WriteLabels(IBufferWriter<byte> output, in MetricPoint point, ReadOnlySpan<byte> le)
    {
        bool any = false;
        foreach (KeyValuePair<string, object?> tag in point.Tags)
        {
            Append(output, any ? ","u8 : "{"u8);
            any = true;
            Append(output, PrometheusNames.Label(tag.Key));
            Append(output, "=\""u8);
            AppendEscaped(output, Convert.ToString(tag.Value, CultureInfo.InvariantCulture) ?? "", escapeQuotes: true);
            Append(output, "\""u8);
        }

        if (!le.IsEmpty)
        {
            Append(output, any ? ","u8 : "{"u8);
            any = true;
            Append(output, "le=\""u8);
            Append(output, le);
            Append(output, "\""u8);
        }

        if (any)
        {
            Append(output, "}"u8);
        }
    }

    /// <summary>Label values escape backslash, double quote and newline; HELP text escapes backslash and newline.</summary>
    private static void AppendEscaped(IBufferWriter<byte> output, string value, bool escapeQuotes)
    {
        int start = 0;
        for (int i = 0; i < value.Length; i++)
        {
            char c = value[i];
            ReadOnlySpan<byte> escape = c switch
            {
                '\\' => "\\\\"u8,
                '\n' => "\\n"u8,
                '"' when escapeQuotes => "\\\""u8,
                _ => default,
            };
            if (escape.IsEmpty)
            {
                continue;
            }

            AppendUtf8(output, value.AsSpan(start, i - start));
            Append(output, escape);
            start = i + 1;
        }

        AppendUtf8(output, value.AsSpan(start));
    }

    private static void AppendNumber(IBufferWriter<byte> output, long value)
    {
        Span<byte> span = output.GetSpan(20);
        Utf8Formatter.TryFormat(value, span, out int written);
        output.Advance(written);
    }

    private static void AppendNumber(IBufferWriter<byte> output, double value)
    {
        Span<byte> span = output.GetSpan(32);
        output.Advance(FormatDouble(value, span));
    }

    private static int FormatDouble(double value, Span<byte> destination)
    {
        if (double.IsNaN(value))
        {
            return Copy("NaN"u8, destination);
        }

        if (double.IsInfinity(value))
        {
            return Copy(value > 0 ? "+Inf"u8 : "-Inf"u8, destination);
        }

        value.TryFormat(destination, out int written, "R", CultureInfo.InvariantCulture);
        return written;
    }

    private static int Copy(ReadOnlySpan<byte> text, Span<byte> destination)
    {
        text.CopyTo(destination);
        return text.Length;
    }

    private static void Append(IBufferWriter<byte> output, ReadOnlySpan<byte> bytes) => output.Write(bytes);

    private static void AppendUtf8(IBufferWriter<byte> output, ReadOnlySpan<char> text)
    {
        if (text.IsEmpty)
        {
            return;
        }

        Span<byte> span = output.GetSpan(Encoding.UTF8.GetMaxByteCount(text.Length));
        output.Advance(Encoding.UTF8.GetBytes(text, span));
    }
}
