using System.Diagnostics;
using Memo.Ingest.TestSupport;

namespace Memo.Ingest.Load.Ceilings;

/// <summary>Runs <see cref="ConventionalReceiver"/> as a child process of the load tool, on a loopback port.</summary>
internal sealed class ConventionalReceiverProcess : IAsyncDisposable
{
    private readonly Process _process;

    private ConventionalReceiverProcess(Process process, Uri address)
    {
        _process = process;
        Address = address;
    }

    public Uri Address { get; }

    public int ProcessId => _process.Id;

    public static async Task<ConventionalReceiverProcess> StartAsync(string connectionString)
    {
        int port = PostgresServer.FreePort();
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in (string[])[typeof(ConventionalReceiver).Assembly.Location, "conventional-receiver", "--port",
                     port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--postgres", connectionString])
        {
            start.ArgumentList.Add(argument);
        }

        // It shares the load tool's runtimeconfig, which turns tiered compilation off for the generator; the baseline
        // runs as any .NET receiver does by default.
        start.Environment["DOTNET_TieredCompilation"] = "1";
        Process process = Process.Start(start) ?? throw new InvalidOperationException("The conventional receiver did not start.");
        process.OutputDataReceived += static (_, _) => { };
        process.ErrorDataReceived += static (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var address = new Uri($"http://127.0.0.1:{port}/");
        using var probe = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(2) };
        await Eventually.TrueAsync(async () =>
        {
            try
            {
                using HttpResponseMessage response = await probe.GetAsync("/healthz");
                return response.IsSuccessStatusCode;
            }
            catch (HttpRequestException)
            {
                return process.HasExited ? throw new InvalidOperationException("The conventional receiver exited.") : false;
            }
        }, "the conventional receiver answers", 30);
        return new ConventionalReceiverProcess(process, address);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}
