using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Memo.Ingest.TestSupport;

/// <summary>What the fake answers one send with.</summary>
public enum FakeAnswer
{
    /// <summary>200 with a new wamid.</summary>
    Accept,

    /// <summary>Takes the message (it counts as sent, with its wamid) and never answers: Meta accepted, the reply was lost.</summary>
    AcceptThenHang,

    /// <summary>Never answers and does not take the message.</summary>
    Hang,

    /// <summary>400, code 130429: the number's throughput is exceeded.</summary>
    Throughput,

    /// <summary>400, code 131056: too many messages to this user.</summary>
    PairRate,

    /// <summary>400, code 131047: more than 24 hours since the user last wrote.</summary>
    OutsideWindow,

    /// <summary>401, code 190: the access token expired.</summary>
    ExpiredToken,

    /// <summary>500, code 131000: something went wrong.</summary>
    ServerError,
}

/// <summary>One call the fake received.</summary>
public sealed record FakeSend(string PhoneNumberId, string? Authorization, string To, string? CallbackData, string Body, long ReceivedTicks,
    FakeAnswer Answer, string? Wamid);

/// <summary>
/// A stand-in for the Graph API's <c>POST /{version}/{phone_number_id}/messages</c> on 127.0.0.1: records every call
/// (when, to whom, with which biz_opaque_callback_data) and answers as scripted per recipient (default: accept).
/// </summary>
public sealed class FakeGraphApi : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<FakeSend> _sends = new();
    private readonly ConcurrentDictionary<string, ConcurrentQueue<FakeAnswer>> _scripts = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _closing = new();
    private long _wamids;

    private FakeGraphApi(WebApplication app) => _app = app;

    public Uri Address { get; private set; } = null!;

    /// <summary>How long the fake takes to answer a send it accepts (Meta's own answer takes 100-300 ms).</summary>
    public TimeSpan Latency { get; set; }

    /// <summary>Every call so far, in arrival order.</summary>
    public IReadOnlyList<FakeSend> Sends => [.. _sends];

    /// <summary>Calls that Meta would have taken (the user got the message).</summary>
    public IReadOnlyList<FakeSend> Delivered => [.. _sends.Where(static s => s.Answer is FakeAnswer.Accept or FakeAnswer.AcceptThenHang)];

    /// <summary>The command-line settings that point a test gateway's outbox at this fake (a system-user token, quick polls).</summary>
    public string[] GatewayArguments(params string[] more) =>
    [
        $"--Memo:Outbox:GraphBaseUrl={Address}",
        "--Memo:Outbox:AccessToken=test-system-user-token",
        "--Memo:Outbox:PollMilliseconds=50",
        .. more,
    ];

    /// <summary>Answers the next sends to <paramref name="to"/> with <paramref name="answers"/>, in order; then accepts.</summary>
    public void Script(string to, params FakeAnswer[] answers)
    {
        ConcurrentQueue<FakeAnswer> queue = _scripts.GetOrAdd(to, static _ => new ConcurrentQueue<FakeAnswer>());
        foreach (FakeAnswer answer in answers)
        {
            queue.Enqueue(answer);
        }
    }

    public static async Task<FakeGraphApi> StartAsync()
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(["--urls=http://127.0.0.1:0"]);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        WebApplication app = builder.Build();
        var fake = new FakeGraphApi(app);
        app.MapPost("/{version}/{phone_number_id}/messages", fake.HandleAsync);
        await app.StartAsync();
        fake.Address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        return fake;
    }

    private async Task HandleAsync(HttpContext context)
    {
        long received = Stopwatch.GetTimestamp();
        using var reader = new StreamReader(context.Request.Body);
        string body = await reader.ReadToEndAsync();
        string to;
        string? callbackData;
        using (JsonDocument document = JsonDocument.Parse(body))
        {
            to = document.RootElement.GetProperty("to").GetString()!;
            callbackData = document.RootElement.TryGetProperty("biz_opaque_callback_data", out JsonElement data) ? data.GetString() : null;
        }

        FakeAnswer answer = _scripts.TryGetValue(to, out ConcurrentQueue<FakeAnswer>? script) && script.TryDequeue(out FakeAnswer scripted)
            ? scripted
            : FakeAnswer.Accept;
        string? wamid = answer is FakeAnswer.Accept or FakeAnswer.AcceptThenHang ? $"wamid.fake.{Interlocked.Increment(ref _wamids)}" : null;
        _sends.Enqueue(new FakeSend((string)context.Request.RouteValues["phone_number_id"]!, context.Request.Headers.Authorization,
            to, callbackData, body, received, answer, wamid));

        using var closing = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _closing.Token);
        switch (answer)
        {
            case FakeAnswer.Accept:
                if (Latency > TimeSpan.Zero)
                {
                    await Task.Delay(Latency, closing.Token);
                }

                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync($$$"""{"messaging_product":"whatsapp","contacts":[{"input":"{{{to}}}","wa_id":"{{{to}}}"}],"messages":[{"id":"{{{wamid}}}"}]}""");
                return;
            case FakeAnswer.AcceptThenHang:
            case FakeAnswer.Hang:
                await Task.Delay(Timeout.Infinite, closing.Token).ContinueWith(static _ => { }, TaskScheduler.Default);
                return;
        }

        (int status, int code, string message) = answer switch
        {
            FakeAnswer.Throughput => (400, 130429, "Rate limit hit"),
            FakeAnswer.PairRate => (400, 131056, "(Business Account, Consumer Account) pair rate limit hit"),
            FakeAnswer.OutsideWindow => (400, 131047, "Re-engagement message"),
            FakeAnswer.ExpiredToken => (401, 190, "Error validating access token: Session has expired"),
            _ => (500, 131000, "Something went wrong"),
        };
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync($$$"""{"error":{"message":"{{{message}}}","type":"OAuthException","code":{{{code}}},"fbtrace_id":"fake"}}""");
    }

    public async ValueTask DisposeAsync()
    {
        await _closing.CancelAsync();
        await _app.StopAsync();
        await _app.DisposeAsync();
        _closing.Dispose();
    }
}
