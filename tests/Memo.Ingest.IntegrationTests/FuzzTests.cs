using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using Memo.Ingest.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// Mutated, correctly signed webhooks against the real host: never a 5xx, never a dropped connection, and the gateway
/// is still ready and storing afterwards. CI runs it for a few seconds; for a long run:
/// <c>MEMO_FUZZ_SECONDS=600 dotnet test tests/Memo.Ingest.IntegrationTests --filter FullyQualifiedName~FuzzTests</c>
/// (<c>MEMO_FUZZ_SEED</c> repeats a run). Inputs that fail are written to tests/corpus/fuzz/ to become regressions.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class FuzzTests(PostgresFixture postgres, ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly string RegressionDirectory = Path.Combine(RepositoryScript.Root, "tests", "corpus", "fuzz");
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync() =>
        _gateway = await GatewayHost.StartAsync(await postgres.Server.CreateDatabaseAsync("fuzz"), "--Memo:Ingest:MaxBodyBytes=200000");

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    [Fact]
    public async Task MutatedSignedWebhooks_NeverGet5xx_AndTheGatewayStaysHealthy()
    {
        int seconds = int.TryParse(Environment.GetEnvironmentVariable("MEMO_FUZZ_SECONDS"), CultureInfo.InvariantCulture, out int s) ? s : 5;
        int seed = int.TryParse(Environment.GetEnvironmentVariable("MEMO_FUZZ_SEED"), CultureInfo.InvariantCulture, out int given) ? given : Environment.TickCount;
        output.WriteLine($"fuzzing for {seconds} s with MEMO_FUZZ_SEED={seed}");
        var outcomes = new ConcurrentDictionary<int, int>();
        var failures = new ConcurrentBag<string>();
        var clock = Stopwatch.StartNew();

        await Task.WhenAll(Enumerable.Range(0, 4).Select(worker => Task.Run(async () =>
        {
            var fuzzer = new WebhookFuzzer(seed + worker);
            while (clock.Elapsed < TimeSpan.FromSeconds(seconds))
            {
                byte[] body = fuzzer.Next();
                int status = await PostAsync(body);
                outcomes.AddOrUpdate(status, 1, static (_, n) => n + 1);
                if (status is >= 500 or RetryingWebhookSender.NoResponse)
                {
                    failures.Add($"{status}: {Record(body)}");
                }
            }
        })));

        output.WriteLine($"{outcomes.Values.Sum()} inputs: " + string.Join(", ", outcomes.OrderBy(static o => o.Key).Select(static o => $"{o.Key}×{o.Value}")));
        Assert.True(failures.IsEmpty, "inputs answered 5xx or not at all (written to tests/corpus/fuzz/):\n" + string.Join('\n', failures));
        // Some mutants are still valid and reach the writers; most stop in the parser.
        Assert.True(outcomes.ContainsKey(200) && outcomes.ContainsKey(400), "the fuzzer reaches both the writers and the parser's rejections");
        await AssertStillServingAsync();
    }

    [Fact]
    public async Task EveryRecordedRegression_IsAnswered4xxOr200()
    {
        foreach (string file in Directory.EnumerateFiles(RegressionDirectory, "*.bin"))
        {
            int status = await PostAsync(await File.ReadAllBytesAsync(file));
            Assert.True(status is (>= 200 and < 300) or (>= 400 and < 500), $"{Path.GetFileName(file)} answered {status}");
        }

        await AssertStillServingAsync();
    }

    private async Task<int> PostAsync(byte[] body)
    {
        try
        {
            using HttpResponseMessage response = await _gateway.Client.SendAsync(WebhookRequest.Create(body, GatewayHost.Secret));
            return (int)response.StatusCode;
        }
        catch (HttpRequestException)
        {
            return RetryingWebhookSender.NoResponse;
        }
    }

    private async Task AssertStillServingAsync()
    {
        using HttpResponseMessage ready = await _gateway.Client.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        string valid = WebhookPayloads.Envelope("PNfuzzok", messages: [WebhookPayloads.TextMessage("wamid.fuzz.ok." + Guid.NewGuid(), "4911", 1700000000, "ok")]);
        Assert.Equal(HttpStatusCode.OK, (await _gateway.PostWebhookAsync(valid)).StatusCode);
    }

    private static string Record(byte[] body)
    {
        string name = Convert.ToHexStringLower(SHA256.HashData(body))[..16] + ".bin";
        File.WriteAllBytes(Path.Combine(RegressionDirectory, name), body);
        return name;
    }
}
