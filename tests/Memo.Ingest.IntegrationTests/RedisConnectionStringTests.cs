using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Memo.Ingest.Redis;
using Memo.Ingest.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// What operators write in <c>ConnectionStrings:Redis</c> (StackExchange.Redis' format) works end to end: the gateway
/// connects to a TLS-only server, authenticates with a password or as an ACL user limited to its keys and channels,
/// uses the database it is told to, and screens a retry through it. A wrong password leaves it on PostgreSQL alone.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class RedisConnectionStringTests(PostgresFixture postgres)
{
    [Fact]
    public async Task Tls_WithAPrivateCa_ConnectsAndScreensThroughIt()
    {
        string directory = Directory.CreateTempSubdirectory("memo-redis-tls-").FullName;
        try
        {
            using var key = RSA.Create(2048);
            var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
            var names = new SubjectAlternativeNameBuilder();
            names.AddDnsName("localhost");
            request.CertificateExtensions.Add(names.Build());
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
            using X509Certificate2 certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
            string certificateFile = Path.Combine(directory, "redis.crt");
            string keyFile = Path.Combine(directory, "redis.key");
            await File.WriteAllTextAsync(certificateFile, certificate.ExportCertificatePem());
            await File.WriteAllTextAsync(keyFile, key.ExportPkcs8PrivateKeyPem());
            int port = PostgresServer.FreePort();
            await using RedisServer redis = await RedisServer.StartOnPortAsync(port, "--port", "0", "--tls-port", port.ToString(CultureInfo.InvariantCulture),
                "--tls-cert-file", certificateFile, "--tls-key-file", keyFile, "--tls-auth-clients", "no");
            string connectionString = $"{redis.ConnectionString},ssl=true,sslHost=localhost";

            string database = await postgres.Server.CreateDatabaseAsync("redis_tls");
            await using GatewayHost gateway = await RedisDeduplicationTests.StartWithRedisAsync(database, connectionString,
                $"--Memo:Redis:TrustedCertificateFile={certificateFile}", RedisDeduplicationTests.PatientScreen);

            ConfigurationOptions probe = ConfigurationOptions.Parse(connectionString);
            probe.TrustIssuer(certificateFile);
            await AssertScreensThroughAsync(gateway, database, probe, redisDatabase: 0);

            // Without the CA the certificate is not trusted, and the gateway says so and runs on PostgreSQL alone.
            string untrusting = await postgres.Server.CreateDatabaseAsync("redis_tls_untrusted");
            var logs = new LogCapture();
            await using GatewayHost refused = await GatewayHost.StartAsync(untrusting, logs, $"--ConnectionStrings:Redis={connectionString},connectTimeout=1000");
            await AssertStoresWithoutRedisAsync(refused, untrusting, logs);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task PasswordAndAclUser_AuthenticateWithTheirPermissions_AndAWrongPasswordIsNotLogged()
    {
        await using RedisServer redis = await RedisServer.StartAsync("--requirepass", "default-pass");
        await using (ConnectionMultiplexer admin = await ConnectionMultiplexer.ConnectAsync($"{redis.ConnectionString},password=default-pass"))
        {
            // The least an ACL user needs: its keys and channels (the key prefix), reading, writing, pub/sub, scripts.
            await admin.GetDatabase().ExecuteAsync("ACL", "SETUSER", "memo", "on", ">memo-pass", "resetkeys", "~memo:*",
                "resetchannels", "&memo:*", "-@all", "+@read", "+@write", "+@pubsub", "+@scripting", "+@connection");
        }

        string withPassword = await postgres.Server.CreateDatabaseAsync("redis_password");
        await using (GatewayHost gateway = await RedisDeduplicationTests.StartWithRedisAsync(withPassword, $"{redis.ConnectionString},password=default-pass", RedisDeduplicationTests.PatientScreen))
        {
            await AssertScreensThroughAsync(gateway, withPassword, ConfigurationOptions.Parse($"{redis.ConnectionString},password=default-pass"), 0);
        }

        string asUser = await postgres.Server.CreateDatabaseAsync("redis_acl");
        await using (GatewayHost gateway = await RedisDeduplicationTests.StartWithRedisAsync(asUser, $"{redis.ConnectionString},user=memo,password=memo-pass", RedisDeduplicationTests.PatientScreen))
        {
            await AssertScreensThroughAsync(gateway, asUser, ConfigurationOptions.Parse($"{redis.ConnectionString},password=default-pass"), 0);
        }

        string wrong = await postgres.Server.CreateDatabaseAsync("redis_wrong_password");
        var logs = new LogCapture();
        await using GatewayHost refused = await GatewayHost.StartAsync(wrong, logs, $"--ConnectionStrings:Redis={redis.ConnectionString},password=not-it,connectTimeout=1000");
        await AssertStoresWithoutRedisAsync(refused, wrong, logs);
        Assert.DoesNotContain(logs.Entries, entry => entry.Message.Contains("not-it", StringComparison.Ordinal));
    }

    [Fact]
    public async Task DefaultDatabase_KeepsTheGatewaysKeysInThatDatabase()
    {
        await using RedisServer redis = await RedisServer.StartAsync();
        string database = await postgres.Server.CreateDatabaseAsync("redis_select");
        await using GatewayHost gateway = await RedisDeduplicationTests.StartWithRedisAsync(database, $"{redis.ConnectionString},defaultDatabase=3", RedisDeduplicationTests.PatientScreen);

        await AssertScreensThroughAsync(gateway, database, ConfigurationOptions.Parse(redis.ConnectionString), redisDatabase: 3);

        await using ConnectionMultiplexer probe = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        Assert.Equal(0, (long)await probe.GetDatabase(0).ExecuteAsync("DBSIZE"));
    }

    /// <summary>
    /// A message is committed, its key appears in <paramref name="redisDatabase"/> of the probe's server, and its retry is
    /// screened by Redis (not PostgreSQL).
    /// </summary>
    private static async Task AssertScreensThroughAsync(GatewayHost gateway, string database, ConfigurationOptions probeOptions, int redisDatabase)
    {
        using var duplicates = new CounterRecorder(gateway.App.Services, "memo.ingest.duplicates", "memo.screened_by");
        string account = "PNconn";
        string body = WebhookPayloads.Envelope(account, messages: [WebhookPayloads.TextMessage("wamid.conn", "49", 1700000000, "c")]);
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(body)).StatusCode);

        await using ConnectionMultiplexer probe = await ConnectionMultiplexer.ConnectAsync(probeOptions);
        await Eventually.TrueAsync(() => RedisDeduplicationTests.RememberedAsync(probe.GetDatabase(redisDatabase), database, 1700000000, $"m:{account}:wamid.conn"),
            "the committed id is remembered in Redis");
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(body)).StatusCode);
        Assert.Equal(1, duplicates["redis"]);
        Assert.Equal(1, await Database.CountAsync(database, "SELECT count(*) FROM messages"));
    }

    private static async Task AssertStoresWithoutRedisAsync(GatewayHost gateway, string database, LogCapture logs)
    {
        string body = WebhookPayloads.Envelope("PNalone", messages: [WebhookPayloads.TextMessage("wamid.alone", "49", 1700000000, "a")]);
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(body)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await gateway.PostWebhookAsync(body)).StatusCode);
        Assert.Equal(1, await Database.CountAsync(database, "SELECT count(*) FROM messages"));
        Assert.False(gateway.App.Services.GetRequiredService<GatewayRedis>().IsConnected);
        await Eventually.TrueAsync(() => logs.Entries.Any(static entry => entry.EventId.Name == "RedisDisconnected"), "the gateway says Redis is unavailable");
    }
}
