using System.Diagnostics;
using System.Net;
using Memo.Ingest.TestSupport;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// The live inbox page end to end in headless Chromium (Debian's chromium driven by npm playwright-core; both
/// installed by scripts/test.sh): the page opens on the account's newest messages (older ones load on demand), a
/// signed webhook's text appears, then its status; a history backfill shows its progress and its messages marked as
/// history while live messages arrive, an echo from the Business app shows as outbound, and a reply typed on the page
/// goes out through the outbox (to a fake Graph API) and shows its status moving. After an account's old events are
/// dropped (retention), the page still opens on what is kept, and starts over when its stream cannot resume.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class InboxPageTests(PostgresFixture postgres)
{
    [Fact]
    public async Task ASignedWebhook_ShowsUpOnTheInboxPage_WithItsStatus_AndOlderHistoryLoadsOnDemand()
    {
        await using FakeGraphApi graph = await FakeGraphApi.StartAsync();
        await using GatewayHost gateway = await GatewayHost.StartAsync(await postgres.Server.CreateDatabaseAsync("inbox"), graph.GatewayArguments());
        const string account = "PNinbox";
        const string text = "Hello from WhatsApp \u2014 \U0001F44B <b>not bold</b>";
        const string replyText = "On its way \U0001F69A <i>today</i>";
        string url = $"{gateway.Address}inbox#token={GatewayHost.MintReadAndSendToken(account)}&account={account}";
        // A history longer than the page's newest window: its first message is not shown until asked for.
        string history = WebhookPayloads.Envelope(account,
            messages: Enumerable.Range(0, 400).Select(static i => WebhookPayloads.TextMessage($"wamid.history.{i}", "4915553", 1690000000 + i, $"history message {i}.")));
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(history)).StatusCode);

        using BrowserScript browser = BrowserScript.Start("inbox-browser.mjs", url, text, "wamid.inbox.1", "history message 0.", "wamid.backfill.1", "wamid.echo.1", replyText);
        Assert.Equal("READY", await browser.ReadLineAsync());
        Assert.Equal("OLDER", await browser.ReadLineAsync());
        string message = WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage("wamid.inbox.1", "4915553", 1700000000, "Hello from WhatsApp \\u2014 \\ud83d\\udc4b <b>not bold</b>")],
            contacts: [WebhookPayloads.Contact("4915553", "Ana")]);
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(message)).StatusCode);
        Assert.Equal("FOUND", await browser.ReadLineAsync());

        string status = WebhookPayloads.Envelope(account, statuses: [WebhookPayloads.Status("wamid.inbox.1", "read", 1700000050, "4915553")]);
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(status)).StatusCode);
        Assert.Equal("READ", await browser.ReadLineAsync());

        // A backfill chunk arrives between live messages.
        string chunk = CoexistencePayloads.HistoryChunk(account, 1, 1, 55,
            [CoexistencePayloads.Thread("4915553", CoexistencePayloads.HistoryText("wamid.backfill.1", "4915553", 1680000000, "from last year", "READ"))]);
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(chunk)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(WebhookPayloads.Envelope(account,
            messages: [WebhookPayloads.TextMessage("wamid.inbox.2", "4915553", 1700000100, "live again")]))).StatusCode);
        Assert.Equal("HISTORY", await browser.ReadLineAsync());
        string echo = CoexistencePayloads.Echoes(account, CoexistencePayloads.EchoText("wamid.echo.1", "+49 155 53", 1700000200, "typed on the phone"));
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(echo)).StatusCode);
        Assert.Equal("ECHO", await browser.ReadLineAsync());

        // The page replies through the outbox; the fake Graph API takes it, and Meta's status moves the row.
        string? replied = await browser.ReadLineAsync();
        Assert.StartsWith("REPLIED memo.outbox.", replied, StringComparison.Ordinal);
        long id = long.Parse(replied!["REPLIED memo.outbox.".Length..], System.Globalization.CultureInfo.InvariantCulture);
        FakeSend send = Assert.Single(graph.Sends);
        Assert.Contains("On its way", send.Body, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(ReplyClient.Status(account, id, send.Wamid!, "delivered", 1700000300, send.To))).StatusCode);
        Assert.Equal("DELIVERED", await browser.ReadLineAsync());
        await browser.ExitedCleanlyAsync();
    }

    [Fact]
    public async Task AfterOldEventsAreDropped_ThePageOpensOnWhatIsKept()
    {
        await using GatewayHost gateway = await GatewayHost.StartAsync(await postgres.Server.CreateDatabaseAsync("inbox_retention"));
        const string account = "PNinboxkept";
        string messages = WebhookPayloads.Envelope(account,
            messages: Enumerable.Range(0, 300).Select(static i => WebhookPayloads.TextMessage($"wamid.kept.{i}", "4915554", 1690000000 + i, $"kept message {i}.")));
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(messages)).StatusCode);
        // 301 events (300 messages and their conversation); the page's newest window starts at 101, the log now at 251.
        Assert.Equal(250, await Database.CountAsync(gateway.ConnectionString,
            "WITH d AS (DELETE FROM account_events WHERE account = 'PNinboxkept' AND seq <= 250 RETURNING 1) SELECT count(*) FROM d"));

        using BrowserScript browser = BrowserScript.Start("inbox-retention.mjs", $"{gateway.Address}inbox#token={GatewayHost.MintToken(account)}&account={account}", "kept message 299.");
        Assert.Equal("READY", await browser.ReadLineAsync());
        Assert.Equal("OLDER", await browser.ReadLineAsync());
        await browser.ExitedCleanlyAsync();
    }

    /// <summary>
    /// A stream that cannot resume: while the gateway is down, messages arrive (through another instance) and the
    /// events right after the page's cursor are dropped, so EventSource's reconnection is refused (410 cursor_expired)
    /// and EventSource gives up. The page must start over from the sync API and show what is kept; without that it
    /// stays on "reconnecting" for good.
    /// </summary>
    [Fact]
    public async Task WhenItsStreamIsRefusedOnReconnecting_ThePageStartsOverFromTheSyncApi()
    {
        string database = await postgres.Server.CreateDatabaseAsync("inbox_restart");
        const string account = "PNinboxrestart";
        string address = $"http://127.0.0.1:{PostgresServer.FreePort()}";
        await using GatewayHost first = await GatewayHost.StartAsync(database, $"--urls={address}");
        Assert.Equal(HttpStatusCode.OK, (await first.PostWebhookAsync(WebhookPayloads.Envelope(account,
            messages: [WebhookPayloads.TextMessage("wamid.restart.0", "4915558", 1690000000, "before the restart.")]))).StatusCode);
        using BrowserScript browser = BrowserScript.Start("inbox-restart.mjs", $"{address}/inbox#token={GatewayHost.MintToken(account)}&account={account}",
            "before the restart.", "after the restart, second.");
        Assert.Equal("READY", await browser.ReadLineAsync());
        await first.DisposeAsync();

        // The page's cursor is seq 2 (the message and its conversation); the next messages make 3 to 6, and 1 to 4
        // are dropped, so the log now starts at 5.
        await using (GatewayHost other = await GatewayHost.StartAsync(database))
        {
            for (int i = 1; i <= 2; i++)
            {
                Assert.Equal(HttpStatusCode.OK, (await other.PostWebhookAsync(WebhookPayloads.Envelope(account, messages:
                    [WebhookPayloads.TextMessage($"wamid.restart.{i}", "4915558", 1690000000 + i, i == 1 ? "after the restart, first." : "after the restart, second.")]))).StatusCode);
            }
        }

        Assert.Equal(4, await Database.CountAsync(database,
            $"WITH d AS (DELETE FROM account_events WHERE account = '{account}' AND seq <= 4 RETURNING 1) SELECT count(*) FROM d"));

        await using GatewayHost restarted = await GatewayHost.StartAsync(database, $"--urls={address}");
        Assert.Equal("SHOWN", await browser.ReadLineAsync());
        Assert.Contains("reloading…", await browser.ReadLineAsync() ?? "");
        await browser.ExitedCleanlyAsync();
    }

    /// <summary>One of tests/js's Chromium scripts, running: it reports each step on a line of its standard output.</summary>
    private sealed class BrowserScript : IDisposable
    {
        private readonly Process _process;
        private readonly Task<string> _errors;

        private BrowserScript(Process process)
        {
            _process = process;
            _errors = process.StandardError.ReadToEndAsync();
        }

        public static BrowserScript Start(string script, params string[] arguments)
        {
            var start = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = RepositoryScript.Root };
            start.ArgumentList.Add(Path.Combine(RepositoryScript.Root, "tests", "js", script));
            foreach (string argument in arguments)
            {
                start.ArgumentList.Add(argument);
            }

            return new BrowserScript(Process.Start(start)!);
        }

        public async Task<string?> ReadLineAsync()
        {
            try
            {
                string? line = await _process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
                if (line is null)
                {
                    await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
                    throw new InvalidOperationException($"The browser script ended (exit {_process.ExitCode}): " + await _errors);
                }

                return line;
            }
            catch (TimeoutException)
            {
                _process.Kill(entireProcessTree: true);
                throw new TimeoutException("The browser script said nothing for 60 s: " + await _errors);
            }
        }

        /// <summary>The script ends by itself within 30 s, with exit code 0 (its standard error otherwise).</summary>
        public async Task ExitedCleanlyAsync()
        {
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(_process.ExitCode == 0, await _errors);
        }

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            _process.Dispose();
        }
    }
}
