using System.Diagnostics;

namespace Memo.Ingest.TestSupport;

/// <summary>The gateway as a separate OS process (the built Memo.Ingest.dll), so a test can SIGKILL it.</summary>
public sealed class GatewayProcess : IAsyncDisposable
{
    private readonly Process _process;

    private GatewayProcess(Process process, Uri address)
    {
        _process = process;
        Address = address;
        Client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
        Client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", GatewayHost.MintToken("*"));
    }

    public Uri Address { get; }

    public int ProcessId => _process.Id;

    /// <summary>Peak resident set size so far (VmHWM in /proc/PID/status), in bytes; 0 where /proc is absent.</summary>
    public long PeakResidentBytes => ReadStatusKilobytes("VmHWM:") * 1024;

    /// <summary>Current resident set size (VmRSS), in bytes.</summary>
    public long ResidentBytes => ReadStatusKilobytes("VmRSS:") * 1024;

    private long ReadStatusKilobytes(string field)
    {
        string path = $"/proc/{_process.Id}/status";
        if (!File.Exists(path))
        {
            return 0;
        }

        string? line = File.ReadLines(path).FirstOrDefault(l => l.StartsWith(field, StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line[field.Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
    }

    public HttpClient Client { get; }

    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _output = new();

    /// <summary>Everything the process wrote to stdout and stderr so far (its console log).</summary>
    public string Output => string.Join('\n', _output);

    /// <param name="logLevel">The default log level; Warning keeps test output quiet, null keeps the shipped default.</param>
    /// <param name="nativeBinary">The Native-AOT executable to run instead of <c>dotnet Memo.Ingest.dll</c>.</param>
    /// <param name="environment">Variables set after the defaults; a null value removes one.</param>
    public static async Task<GatewayProcess> StartAsync(string connectionString, int port, string? redis = null, string? logLevel = "Warning",
        string? nativeBinary = null, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var start = new ProcessStartInfo(nativeBinary ?? "dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        if (nativeBinary is null)
        {
            start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Memo.Ingest.dll"));
        }

        start.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
        start.Environment["ConnectionStrings__Postgres"] = connectionString;
        start.Environment["Memo__WhatsApp__AppSecrets__0"] = GatewayHost.Secret;
        start.Environment["Memo__Auth__SigningKeys__0"] = GatewayHost.SigningKey;
        start.Environment["Memo__WhatsApp__VerifyToken"] = GatewayHost.VerifyToken;
        // As in GatewayHost: the tests' cursor readers poll far above the default read rate per token.
        start.Environment["Memo__Auth__ReadRequestsPerSecond"] = "0";
        if (logLevel is not null)
        {
            start.Environment["Logging__LogLevel__Default"] = logLevel;
        }

        if (redis is not null)
        {
            start.Environment["ConnectionStrings__Redis"] = redis;
        }

        foreach ((string name, string? value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null)
            {
                start.Environment.Remove(name);
            }
            else
            {
                start.Environment[name] = value;
            }
        }

        Process process = Process.Start(start)!;
        var gateway = new GatewayProcess(process, new Uri($"http://127.0.0.1:{port}"));
        process.OutputDataReceived += (_, line) => gateway.Capture(line.Data);
        process.ErrorDataReceived += (_, line) => gateway.Capture(line.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await gateway.WaitReadyAsync();
        return gateway;
    }

    private async Task WaitReadyAsync()
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"The gateway exited with {_process.ExitCode} before it was ready.");
            }

            try
            {
                using HttpResponseMessage response = await Client.GetAsync("/readyz");
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(100);
        }

        throw new TimeoutException("The gateway did not become ready.");
    }

    /// <summary>Waits until the gateway reports its Redis connection up in /readyz.</summary>
    public Task WaitForRedisAsync() => Eventually.TrueAsync(async () =>
        (await Client.GetStringAsync("/readyz")).Contains("\"redis\":\"connected\"", StringComparison.Ordinal), "the gateway connects to Redis");

    private void Capture(string? line)
    {
        if (line is not null)
        {
            _output.Enqueue(line);
        }
    }

    /// <summary>SIGTERM, as an orchestrator stops a pod; returns the exit code once the process has ended.</summary>
    public async Task<int> TerminateAsync()
    {
        using (Process kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
        }

        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        return _process.ExitCode;
    }

    /// <summary>SIGKILL: no shutdown hooks, no drain, no flush.</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}
