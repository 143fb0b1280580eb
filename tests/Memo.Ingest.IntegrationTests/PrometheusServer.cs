using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Memo.Ingest.TestSupport;

namespace Memo.Ingest.IntegrationTests;

/// <summary>A real Prometheus (Debian's package) on a free loopback port, scraping given targets every second.</summary>
internal sealed class PrometheusServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _directory;

    private PrometheusServer(Process process, string directory, Uri address)
    {
        _process = process;
        _directory = directory;
        Client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(10) };
    }

    public HttpClient Client { get; }

    public static async Task<PrometheusServer> StartAsync(params Uri[] targets)
    {
        string directory = Directory.CreateTempSubdirectory("memo-test-prometheus-").FullName;
        string config = Path.Combine(directory, "prometheus.yml");
        await File.WriteAllTextAsync(config, $$"""
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: memo-ingest
                metrics_path: /metrics
                static_configs:
                  - targets: [{{string.Join(", ", targets.Select(static t => $"\"{t.Authority}\""))}}]
            """);
        int port = PostgresServer.FreePort();
        var start = new ProcessStartInfo("prometheus") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = directory };
        foreach (string argument in (string[])[$"--config.file={config}", $"--storage.tsdb.path={Path.Combine(directory, "data")}",
                     $"--web.listen-address=127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}"])
        {
            start.ArgumentList.Add(argument);
        }

        Process process = Process.Start(start)!;
        process.OutputDataReceived += static (_, _) => { };
        process.ErrorDataReceived += static (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new PrometheusServer(process, directory, new Uri($"http://127.0.0.1:{port}"));
        await Eventually.TrueAsync(async () =>
        {
            try
            {
                return (await server.Client.GetAsync("/-/ready")).IsSuccessStatusCode;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, "Prometheus is ready");
        return server;
    }

    /// <summary>Runs an instant query; returns the value of each series by its label set.</summary>
    public async Task<Dictionary<string, double>> QueryAsync(string promql)
    {
        using JsonDocument document = JsonDocument.Parse(await Client.GetStringAsync("/api/v1/query?query=" + Uri.EscapeDataString(promql)));
        var values = new Dictionary<string, double>();
        foreach (JsonElement series in document.RootElement.GetProperty("data").GetProperty("result").EnumerateArray())
        {
            values[series.GetProperty("metric").ToString()] = double.Parse(series.GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture);
        }

        return values;
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill();
        }

        await _process.WaitForExitAsync();
        _process.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
