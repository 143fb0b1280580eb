using System.Diagnostics;
using System.Globalization;
using Memo.Ingest.TestSupport;

namespace Memo.Ingest.Load.Ceilings;

/// <summary>
/// Runs one of the load tool's baseline receivers as a child process on a loopback port, so that its CPU is its own,
/// like the gateway's: the conventional one-INSERT-per-message receiver (<see cref="ConventionalReceiver"/>) or the bare
/// endpoint that only checks the HMAC (<see cref="BareHmacServer"/>).
/// </summary>
internal sealed class BaselineProcess : IAsyncDisposable
{
    private readonly Process _process;

    private BaselineProcess(Process process, Uri address)
    {
        _process = process;
        Address = address;
    }

    public Uri Address { get; }

    public int ProcessId => _process.Id;

    public static Task<BaselineProcess> StartConventionalAsync(string connectionString) =>
        StartAsync("the conventional receiver", port => ["conventional-receiver", "--port", port, "--postgres", connectionString]);

    public static Task<BaselineProcess> StartBareHmacAsync() => StartAsync("the bare HMAC endpoint", static port => ["bare-hmac-receiver", "--port", port]);

    private static async Task<BaselineProcess> StartAsync(string name, Func<string, string[]> command)
    {
        int port = PostgresServer.FreePort();
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(typeof(BaselineProcess).Assembly.Location);
        foreach (string argument in command(port.ToString(CultureInfo.InvariantCulture)))
        {
            start.ArgumentList.Add(argument);
        }

        // It shares the load tool's runtimeconfig, which turns tiered compilation off for the generator; a baseline
        // runs as any .NET receiver does by default.
        start.Environment["DOTNET_TieredCompilation"] = "1";
        Process process = Process.Start(start) ?? throw new InvalidOperationException($"{name} did not start.");
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
                return process.HasExited ? throw new InvalidOperationException($"{name} exited.") : false;
            }
        }, $"{name} answers", 30);
        return new BaselineProcess(process, address);
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
