namespace Memo.Ingest.Health;

/// <summary>
/// <c>Memo.Ingest probe [url]</c>: exits 0 when the URL (default: this host's <c>/readyz</c>) answers 2xx, 1
/// otherwise. The container image has no shell or curl, so Docker and compose health checks call the binary itself.
/// </summary>
public static class ProbeCommand
{
    public const string Name = "probe";

    public const string DefaultUrl = "http://127.0.0.1:8080/readyz";

    public static async Task<int> RunAsync(string[] args, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(error);
        string url = args is [var given, ..] ? given : DefaultUrl;
        if (!Uri.TryCreate(url, UriKind.Absolute, out Uri? target) || (target.Scheme != Uri.UriSchemeHttp && target.Scheme != Uri.UriSchemeHttps))
        {
            await error.WriteLineAsync($"usage: Memo.Ingest {Name} [http://127.0.0.1:8080/readyz]");
            return 2;
        }

        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
        try
        {
            using HttpResponseMessage response = await client.GetAsync(target);
            if (response.IsSuccessStatusCode)
            {
                return 0;
            }

            await error.WriteLineAsync($"{target} answered {(int)response.StatusCode}");
            return 1;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            await error.WriteLineAsync($"{target} did not answer: {e.Message}");
            return 1;
        }
    }
}
