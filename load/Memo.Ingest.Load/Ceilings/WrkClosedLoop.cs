using System.Globalization;
using System.Text;
using Memo.Ingest.Load.ClosedLoop;
using Memo.Ingest.Load.OpenModel;
using Memo.Ingest.TestSupport;

namespace Memo.Ingest.Load.Ceilings;

/// <summary>
/// The closed loop of <see cref="ClosedLoopSender"/> driven by wrk: the same fresh signed webhooks, made and signed
/// before the run into one file per wrk thread, so that the client spends its CPU on HTTP alone. The HttpClient loop
/// costs about 120 µs of CPU per request on this machine in a slow phase, a fifth of the box at one message per POST,
/// which both receivers then lack (docs/PERFORMANCE.md, "What returning each event's item costs"). A run that would
/// need more webhooks than were made fails instead of repeating one (a repeat is a duplicate, cheaper to answer).
/// </summary>
internal sealed class WrkClosedLoop : IDisposable
{
    // Two threads for two cores, each with its own file of webhooks, read in its init. wrk starts its clock once every
    // thread is created, so the first thread may send while the second still reads its file: a fraction of a second,
    // the same for both receivers.
    private const int Threads = 2;

    private const string Script = """
        local thread_list = {}
        local created = 0
        function setup(thread)
          thread:set("id", created)
          created = created + 1
          table.insert(thread_list, thread)
        end
        function init(args)
          lines = {}
          for line in io.lines(args[1] .. "." .. id) do lines[#lines + 1] = line end
          next_line = 0
          wrapped = 0
        end
        function request()
          next_line = next_line + 1
          if next_line > #lines then next_line = 1; wrapped = wrapped + 1 end
          local line = lines[next_line]
          local tab = line:find("\t", 1, true)
          return wrk.format("POST", "/webhooks/whatsapp",
            { ["Content-Type"] = "application/json", ["X-Hub-Signature-256"] = line:sub(1, tab - 1) }, line:sub(tab + 1))
        end
        function done(summary, latency, requests)
          local wrapped_total = 0
          for _, thread in ipairs(thread_list) do wrapped_total = wrapped_total + thread:get("wrapped") end
          io.write("memo-wrapped: " .. wrapped_total .. "\n")
        end
        """;

    private readonly string _directory = Directory.CreateTempSubdirectory("memo-wrk-").FullName;

    private WrkClosedLoop()
    {
    }

    private string Requests => Path.Combine(_directory, "requests");

    /// <summary>Makes and signs webhooks 1 to <paramref name="count"/> (<paramref name="body"/>), dealt to the threads' files.</summary>
    public static async Task<WrkClosedLoop> PrepareAsync(Func<long, byte[]> body, long count, string secret)
    {
        var loop = new WrkClosedLoop();
        await File.WriteAllTextAsync(Path.Combine(loop._directory, "closed-loop.lua"), Script);
        var writers = new StreamWriter[Threads];
        try
        {
            for (int t = 0; t < Threads; t++)
            {
                writers[t] = new StreamWriter(loop.Requests + "." + t.ToString(CultureInfo.InvariantCulture), append: false, new UTF8Encoding(false), 1 << 20);
            }

            for (long n = 1; n <= count; n++)
            {
                byte[] payload = body(n);
                StreamWriter writer = writers[n % Threads];
                await writer.WriteAsync(WebhookSigner.Sign(payload, secret));
                await writer.WriteAsync('\t');
                await writer.WriteAsync(Encoding.UTF8.GetString(payload));
                await writer.WriteAsync('\n');
            }
        }
        finally
        {
            foreach (StreamWriter? writer in writers)
            {
                if (writer is not null)
                {
                    await writer.DisposeAsync();
                }
            }
        }

        return loop;
    }

    /// <summary>Runs wrk's closed loop against <paramref name="receiver"/> with <paramref name="connections"/> connections.</summary>
    public async Task<ClosedLoopResult> RunAsync(Uri receiver, int connections, TimeSpan duration, int messagesPerPost)
    {
        string report = await Wrk.RunAsync([$"-t{Threads}", $"-c{connections}", $"-d{(int)duration.TotalSeconds}s", "--latency", "--timeout", "30s",
            "-s", Path.Combine(_directory, "closed-loop.lua"), new Uri(receiver, "/webhooks/whatsapp").ToString(), Requests]);
        return Parse(report, messagesPerPost);
    }

    /// <summary>Reads wrk's report: requests and time, answers other than 2xx, socket errors, latency percentiles.</summary>
    internal static ClosedLoopResult Parse(string report, int messagesPerPost)
    {
        string[] lines = report.Split('\n', StringSplitOptions.TrimEntries);
        string Line(string prefix) => lines.FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"wrk printed no '{prefix}':\n{report}");
        static double Milliseconds(string value) => value.EndsWith("us", StringComparison.Ordinal) ? Number(value[..^2]) / 1000
            : value.EndsWith("ms", StringComparison.Ordinal) ? Number(value[..^2])
            : value.EndsWith('s') ? Number(value[..^1]) * 1000
            : throw new FormatException($"Not a wrk duration: {value}");
        static double Number(string value) => double.Parse(value, CultureInfo.InvariantCulture);
        static string[] Words(string line) => line.Split(' ', StringSplitOptions.RemoveEmptyEntries);

        if (Number(Words(Line("memo-wrapped:"))[1]) > 0)
        {
            throw new InvalidOperationException("wrk used every prepared webhook and started again (repeats are duplicates): prepare more.");
        }

        // "40000 requests in 10.00s, 3.00MB read"
        string[] total = Words(lines.First(static l => l.Contains(" requests in ", StringComparison.Ordinal)));
        long requests = long.Parse(total[0], CultureInfo.InvariantCulture);
        double seconds = Milliseconds(total[3].TrimEnd(',')) / 1000;
        long other = lines.FirstOrDefault(static l => l.StartsWith("Non-2xx or 3xx responses:", StringComparison.Ordinal)) is { } non2xx
            ? long.Parse(Words(non2xx)[^1], CultureInfo.InvariantCulture) : 0;
        // "Socket errors: connect 0, read 0, write 0, timeout 0": failed exchanges that are not in the request count.
        long socketErrors = lines.FirstOrDefault(static l => l.StartsWith("Socket errors:", StringComparison.Ordinal)) is { } errorsLine
            ? Words(errorsLine).Skip(2).Where(static (_, i) => i % 2 == 1).Sum(static w => long.Parse(w.TrimEnd(','), CultureInfo.InvariantCulture)) : 0;
        int acknowledged = (int)(requests - other);
        var latency = new LatencySummary(acknowledged, Milliseconds(Words(Line("50%"))[1]), Milliseconds(Words(Line("90%"))[1]),
            Milliseconds(Words(Line("99%"))[1]), Milliseconds(Words(Line("Latency "))[3]));
        return new ClosedLoopResult(acknowledged, (long)acknowledged * messagesPerPost, (int)(other + socketErrors), seconds, latency);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
