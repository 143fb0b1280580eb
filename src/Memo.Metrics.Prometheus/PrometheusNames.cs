using System.Collections.Concurrent;
using System.Text;

namespace Memo.Metrics.Prometheus;

/// <summary>
/// OpenTelemetry instrument names and units to Prometheus metric names, as the OpenTelemetry/Prometheus compatibility
/// rules describe: characters outside <c>[a-zA-Z0-9_:]</c> become <c>_</c>, the unit is appended in words
/// (<c>s</c> → <c>_seconds</c>, <c>By</c> → <c>_bytes</c>; <c>{annotations}</c> are dropped), and monotonic sums end
/// in <c>_total</c>. Names are computed once per instrument and cached.
/// </summary>
internal static class PrometheusNames
{
    private static readonly ConcurrentDictionary<(string Name, string? Unit, bool Counter), byte[]> MetricNames = new();
    private static readonly ConcurrentDictionary<string, byte[]> LabelNames = new();

    public static byte[] Metric(string name, string? unit, bool counter) =>
        MetricNames.GetOrAdd((name, unit, counter), static key => Encoding.UTF8.GetBytes(Build(key.Name, key.Unit, key.Counter)));

    public static byte[] Label(string key) => LabelNames.GetOrAdd(key, static k =>
    {
        string sanitized = Sanitize(k, allowColon: false);
        return Encoding.UTF8.GetBytes(char.IsAsciiDigit(sanitized[0]) ? "_" + sanitized : sanitized);
    });

    internal static string Build(string name, string? unit, bool counter)
    {
        string result = Sanitize(name, allowColon: true);
        if (char.IsAsciiDigit(result[0]))
        {
            result = "_" + result;
        }

        string unitWords = UnitSuffix(unit);
        if (unitWords.Length > 0 && !result.EndsWith("_" + unitWords, StringComparison.Ordinal))
        {
            result += "_" + unitWords;
        }

        if (counter && !result.EndsWith("_total", StringComparison.Ordinal))
        {
            result += "_total";
        }

        return result;
    }

    internal static string UnitSuffix(string? unit)
    {
        if (string.IsNullOrEmpty(unit))
        {
            return "";
        }

        // Annotations in braces ("{request}") carry no unit.
        var withoutAnnotations = new StringBuilder();
        int depth = 0;
        foreach (char c in unit)
        {
            depth += c == '{' ? 1 : c == '}' ? -1 : 0;
            if (depth == 0 && c != '}')
            {
                withoutAnnotations.Append(c);
            }
        }

        string bare = withoutAnnotations.ToString().Trim();
        if (bare.Length == 0 || bare == "1")
        {
            return "";
        }

        int slash = bare.IndexOf('/', StringComparison.Ordinal);
        return slash < 0
            ? Sanitize(Word(bare), allowColon: false).Trim('_')
            : Sanitize(Word(bare[..slash]) + "_per_" + PerWord(bare[(slash + 1)..]), allowColon: false).Trim('_');
    }

    private static string Word(string unit) => unit switch
    {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "%" => "percent",
        _ => unit,
    };

    private static string PerWord(string unit) => unit switch
    {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        _ => unit,
    };

    private static string Sanitize(string value, bool allowColon)
    {
        var result = new StringBuilder(value.Length);
        bool lastWasUnderscore = false;
        foreach (char c in value)
        {
            bool valid = char.IsAsciiLetterOrDigit(c) || c == '_' || (allowColon && c == ':');
            if (valid)
            {
                result.Append(c);
                lastWasUnderscore = c == '_';
            }
            else if (!lastWasUnderscore)
            {
                result.Append('_');
                lastWasUnderscore = true;
            }
        }

        return result.Length == 0 ? "_" : result.ToString();
    }
}
