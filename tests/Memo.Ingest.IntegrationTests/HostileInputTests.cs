using System.Net;
using System.Text.Json;
using Memo.Ingest.TestSupport;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// The hostile-input corpus (<see cref="HostileInput.Corpus"/>, 54 bodies and header sets) against the
/// real host: each gets its documented 4xx and error code, nothing is stored, and the process keeps serving.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class HostileInputTests(PostgresFixture postgres) : IAsyncLifetime
{
    private const int MaxBodyBytes = 1_000_000;
    private GatewayHost _gateway = null!;
    private string _database = null!;

    public async Task InitializeAsync()
    {
        _database = await postgres.Server.CreateDatabaseAsync("hostile");
        _gateway = await GatewayHost.StartAsync(_database, $"--Memo:Ingest:MaxBodyBytes={MaxBodyBytes}");
    }

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    [Fact]
    public void Corpus_HasAtLeastThirtyDistinctCases()
    {
        IReadOnlyList<HostileInput> corpus = HostileInput.Corpus("PNcount", MaxBodyBytes);
        Assert.True(corpus.Count >= 30);
        Assert.Equal(corpus.Count, corpus.Select(static c => c.Name).Distinct().Count());
    }

    [Fact]
    public async Task EveryHostileInput_GetsItsStatusAndCode_StoresNothing_AndTheGatewayKeepsServing()
    {
        string account = "PNhostile";
        var wrong = new List<string>();
        foreach (HostileInput input in HostileInput.Corpus(account, MaxBodyBytes))
        {
            using HttpResponseMessage response = await _gateway.Client.SendAsync(input.ToRequest(GatewayHost.Secret));
            string body = await response.Content.ReadAsStringAsync();
            string? code = null;
            try
            {
                using JsonDocument error = JsonDocument.Parse(body);
                code = error.RootElement.GetProperty("error").GetString();
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
            {
            }

            if ((int)response.StatusCode != input.ExpectedStatus || code != input.ExpectedCode)
            {
                wrong.Add($"{input.Name}: expected {input.ExpectedStatus} {input.ExpectedCode}, got {(int)response.StatusCode} {code ?? body}");
            }
        }

        Assert.True(wrong.Count == 0, string.Join('\n', wrong));
        Assert.Equal(0, await Database.TotalRowsAsync(_database));
        using HttpResponseMessage healthy = await _gateway.Client.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.OK, healthy.StatusCode);
        string valid = WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage("wamid.after", "4911", 1700000000, "still here")]);
        Assert.Equal(HttpStatusCode.OK, (await _gateway.PostWebhookAsync(valid)).StatusCode);
    }
}
