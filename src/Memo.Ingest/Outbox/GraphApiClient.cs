using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Memo.Ingest.Configuration;

namespace Memo.Ingest.Outbox;

/// <summary>
/// Posts a message to <c>{GraphBaseUrl}/{ApiVersion}/{phone_number_id}/messages</c> and classifies the answer
/// (<see cref="SendOutcomeKind"/>) by Meta's error codes, which say more than the HTTP status: 131047 (outside the
/// 24-hour window) and 190 (expired token) are 400s that will never succeed, 130429 and 131056 are limits to wait out.
/// </summary>
internal sealed class GraphApiClient : IDisposable
{
    private static readonly MediaTypeHeaderValue s_json = new("application/json");

    private readonly HttpClient _http;
    private readonly OutboxOptions _options;
    private readonly string _baseUrl;

    public GraphApiClient(OutboxOptions options)
    {
        _options = options;
        _baseUrl = options.GraphBaseUrl.TrimEnd('/') + "/" + options.ApiVersion.Trim('/') + "/";
        _http = new HttpClient(new SocketsHttpHandler
        {
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            ConnectTimeout = TimeSpan.FromSeconds(10),
            MaxConnectionsPerServer = Math.Max(1, options.MaxConcurrentSends),
            EnableMultipleHttp2Connections = true,
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
    }

    public async Task<SendOutcome> SendAsync(string account, string accessToken, ReadOnlyMemory<byte> body, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(_options.RequestTimeoutSeconds));
        using var request = new HttpRequestMessage(HttpMethod.Post, _baseUrl + Uri.EscapeDataString(account) + "/messages")
        {
            Content = new ReadOnlyMemoryContent(body) { Headers = { ContentType = s_json } },
            // HTTP/2 where the server offers it (graph.facebook.com does, over TLS): many sends share few connections.
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", accessToken);
        try
        {
            using HttpResponseMessage response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, timeout.Token);
            byte[] answer = await response.Content.ReadAsByteArrayAsync(timeout.Token);
            return Classify(response.StatusCode, answer);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new SendOutcome(SendOutcomeKind.Timeout);
        }
        catch (HttpRequestException e) when (e.HttpRequestError is HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError
                                                 or HttpRequestError.SecureConnectionError or HttpRequestError.ProxyTunnelError)
        {
            // The request never left: retrying cannot send the message twice.
            return new SendOutcome(SendOutcomeKind.Retry);
        }
        catch (HttpRequestException)
        {
            // The connection broke with the request on its way or sent: Meta may have it.
            return new SendOutcome(SendOutcomeKind.Timeout);
        }
    }

    internal static SendOutcome Classify(HttpStatusCode status, byte[] answer)
    {
        int code = (int)status;
        if (code is >= 200 and < 300)
        {
            return new SendOutcome(SendOutcomeKind.Accepted, Wamid: ReadWamid(answer), Response: answer);
        }

        (int? errorCode, byte[]? error) = ReadError(answer);
        SendOutcomeKind kind = errorCode switch
        {
            // Throughput of the number (130429), during a throughput upgrade (131057), application rate limits (4, 80007).
            130429 or 131057 or 4 or 80007 => SendOutcomeKind.ThrottledAccount,
            131056 => SendOutcomeKind.ThrottledPair,
            // Unknown or transient Graph errors, "service unavailable", "something went wrong".
            1 or 2 or 131000 or 131016 or 133004 => SendOutcomeKind.Retry,
            _ when status == HttpStatusCode.TooManyRequests => SendOutcomeKind.ThrottledAccount,
            _ when code >= 500 => SendOutcomeKind.Retry,
            _ => SendOutcomeKind.Failed,
        };
        return new SendOutcome(kind, ErrorCode: errorCode ?? code, Error: error ?? ErrorWithoutBody(code));
    }

    private static string? ReadWamid(byte[] answer)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(answer);
            return document.RootElement.TryGetProperty("messages", out JsonElement messages) && messages.ValueKind == JsonValueKind.Array
                && messages.GetArrayLength() > 0 && messages[0].TryGetProperty("id", out JsonElement id) && id.ValueKind == JsonValueKind.String
                ? id.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Meta's <c>error</c> object, raw, and its <c>code</c>; nothing when the answer is not Graph's error shape.</summary>
    private static (int? Code, byte[]? Error) ReadError(byte[] answer)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(answer);
            if (document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("error", out JsonElement error)
                && error.ValueKind == JsonValueKind.Object)
            {
                int? code = error.TryGetProperty("code", out JsonElement value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int number) ? number : null;
                var raw = new ArrayBufferWriter<byte>(answer.Length);
                using (var json = new Utf8JsonWriter(raw))
                {
                    error.WriteTo(json);
                }

                return (code, raw.WrittenSpan.ToArray());
            }
        }
        catch (JsonException)
        {
        }

        return (null, null);
    }

    /// <summary>An error object in Graph's shape for an answer that had none (a proxy's 502, say).</summary>
    private static byte[] ErrorWithoutBody(int status)
    {
        var raw = new ArrayBufferWriter<byte>(64);
        using (var json = new Utf8JsonWriter(raw))
        {
            json.WriteStartObject();
            json.WriteNumber("code", status);
            json.WriteString("message", "HTTP " + status.ToString(System.Globalization.CultureInfo.InvariantCulture) + " without a Graph error");
            json.WriteEndObject();
        }

        return raw.WrittenSpan.ToArray();
    }

    public void Dispose() => _http.Dispose();
}
