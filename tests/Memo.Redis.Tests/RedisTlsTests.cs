using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Memo.Ingest.TestSupport;
using Memo.Redis;
using Xunit;

namespace Memo.Redis.Tests;

/// <summary>TLS as managed Redis services require it: a redis-server that only listens with TLS.</summary>
public sealed class RedisTlsTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("memo-redis-tls-").FullName;
    private X509Certificate2 _certificate = null!;
    private RedisServer _server = null!;

    public async Task InitializeAsync()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        _certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        string certificateFile = Path.Combine(_directory, "redis.crt");
        string keyFile = Path.Combine(_directory, "redis.key");
        await File.WriteAllTextAsync(certificateFile, _certificate.ExportCertificatePem());
        await File.WriteAllTextAsync(keyFile, key.ExportPkcs8PrivateKeyPem());

        int port = PostgresServer.FreePort();
        _server = await RedisServer.StartOnPortAsync(port, "--port", "0", "--tls-port", port.ToString(CultureInfo.InvariantCulture),
            "--tls-cert-file", certificateFile, "--tls-key-file", keyFile, "--tls-auth-clients", "no");
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _certificate.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task Ssl_connects_to_a_tls_only_server_that_presents_the_expected_certificate()
    {
        RedisConnectionOptions options = RedisConnectionOptions.Parse($"{_server.ConnectionString},ssl=true,sslHost=localhost");
        options.CertificateValidation = (_, certificate, _, _) => certificate is not null && certificate.GetCertHashString() == _certificate.Thumbprint;

        await using RedisConnection redis = await RedisConnection.ConnectAsync(options);
        await redis.ExecuteAsync("SET", "secure", "yes");
        Assert.Equal("yes", (await redis.ExecuteAsync("GET", "secure")).AsString());
    }

    [Fact]
    public async Task An_untrusted_certificate_is_refused_with_a_clear_error()
    {
        RedisConnectionOptions options = RedisConnectionOptions.Parse($"{_server.ConnectionString},ssl=true,sslHost=localhost,connectTimeout=1000");

        var error = await Assert.ThrowsAsync<RedisConnectionException>(() => RedisConnection.ConnectAsync(options));
        Assert.Contains("TLS handshake", error.InnerException?.Message ?? "", StringComparison.Ordinal);
    }

    [Fact]
    public async Task Plain_text_to_a_tls_port_fails_rather_than_hangs()
    {
        RedisConnectionOptions options = RedisConnectionOptions.Parse($"{_server.ConnectionString},connectTimeout=1000");
        await Assert.ThrowsAsync<RedisConnectionException>(() => RedisConnection.ConnectAsync(options));
    }
}
