using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Memo.Ingest.TestSupport;

/// <summary>
/// A private redis-server (Debian's package; scripts/install-deps.sh installs it) on a free loopback port, with no
/// persistence. It can be stopped and started again on the same port, which is how tests simulate an outage.
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    private readonly string[] _extraArguments;
    private readonly string _directory;
    private Process? _process;

    private RedisServer(int port, string[] extraArguments)
    {
        Port = port;
        _extraArguments = extraArguments;
        _directory = Directory.CreateTempSubdirectory("memo-test-redis-").FullName;
    }

    public int Port { get; }

    /// <summary>For <c>ConnectionStrings:Redis</c>: <c>127.0.0.1:port</c>.</summary>
    public string ConnectionString => $"127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}";

    public bool IsRunning => _process is { HasExited: false };

    /// <summary>The running server's process, for load reports that show where the CPU went.</summary>
    public int? ProcessId => IsRunning ? _process!.Id : null;

    /// <param name="extraArguments">redis-server options, e.g. <c>--requirepass secret</c>.</param>
    public static Task<RedisServer> StartAsync(params string[] extraArguments) =>
        StartOnPortAsync(PostgresServer.FreePort(), extraArguments);

    /// <summary>For servers that listen differently (a TLS-only port, say); the arguments override the defaults.</summary>
    public static async Task<RedisServer> StartOnPortAsync(int port, params string[] extraArguments)
    {
        var server = new RedisServer(port, extraArguments);
        await server.StartAgainAsync();
        return server;
    }

    /// <summary>Starts the server (again) on the same port and waits until it accepts connections.</summary>
    public async Task StartAgainAsync()
    {
        if (IsRunning)
        {
            return;
        }

        var start = new ProcessStartInfo("redis-server")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _directory,
        };
        foreach (string argument in (string[])["--port", Port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", _directory, .. _extraArguments])
        {
            start.ArgumentList.Add(argument);
        }

        try
        {
            _process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("redis-server is not installed: run scripts/install-deps.sh.", e);
        }

        _process.OutputDataReceived += static (_, _) => { };
        _process.ErrorDataReceived += static (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException) when (deadline.Elapsed < TimeSpan.FromSeconds(15) && !_process.HasExited)
            {
                await Task.Delay(20);
            }
        }
    }

    /// <summary>Kills the server (SIGKILL: no goodbye to clients, like a crash or a network cut).</summary>
    public async Task StopAsync()
    {
        if (_process is null)
        {
            return;
        }

        if (!_process.HasExited)
        {
            _process.Kill();
        }

        await _process.WaitForExitAsync();
        _process.Dispose();
        _process = null;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
