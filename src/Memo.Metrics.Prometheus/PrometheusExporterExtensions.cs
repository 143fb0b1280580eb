using System.Buffers;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using OpenTelemetry.Metrics;

namespace Memo.Metrics.Prometheus;

/// <summary>
/// The same two calls as OpenTelemetry.Exporter.Prometheus.AspNetCore, so that package can replace this project by
/// changing references only.
/// </summary>
public static class PrometheusExporterExtensions
{
    /// <summary>Adds a pull reader whose exporter renders the Prometheus text format on scrape.</summary>
    public static MeterProviderBuilder AddPrometheusExporter(this MeterProviderBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.ConfigureServices(static services => services.TryAddSingleton<PrometheusTextExporter>());
        return builder.AddReader(static services => new BaseExportingMetricReader(services.GetRequiredService<PrometheusTextExporter>())
        {
            TemporalityPreference = MetricReaderTemporalityPreference.Cumulative,
        });
    }

    /// <summary>Maps <c>GET {path}</c> to the current metrics in the Prometheus text format.</summary>
    public static IEndpointConventionBuilder MapPrometheusScrapingEndpoint(this IEndpointRouteBuilder endpoints, string path = "/metrics")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        return endpoints.MapGet(path, static async context =>
        {
            var exporter = context.RequestServices.GetRequiredService<PrometheusTextExporter>();
            // The text is copied out under the exporter's lock (into a pooled buffer) and written after it, so a slow
            // scraper never holds up another scrape.
            var copy = new StrongBox<(byte[] Buffer, int Length)>();
            if (!exporter.Scrape(copy, static (text, box) =>
                {
                    byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(1, text.Length));
                    text.Span.CopyTo(buffer);
                    box.Value = (buffer, text.Length);
                }))
            {
                context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                return;
            }

            try
            {
                context.Response.ContentType = PrometheusTextExporter.ContentType;
                context.Response.ContentLength = copy.Value.Length;
                await context.Response.Body.WriteAsync(copy.Value.Buffer.AsMemory(0, copy.Value.Length), context.RequestAborted);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(copy.Value.Buffer);
            }
        });
    }
}
