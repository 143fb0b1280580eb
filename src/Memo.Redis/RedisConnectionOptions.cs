using System.Globalization;
using System.Net.Security;

namespace Memo.Redis;

/// <summary>
/// Where and how to connect. <see cref="Parse"/> reads the connection-string form other Redis clients use:
/// <c>host:port,user=…,password=…,ssl=true,defaultDatabase=2,connectTimeout=5000,commandTimeout=5000</c>.
/// </summary>
public sealed class RedisConnectionOptions
{
    public const int DefaultPort = 6379;

    public string Host { get; set; } = "127.0.0.1";

    public int Port { get; set; } = DefaultPort;

    /// <summary>ACL user name (Redis 6+); with only a password, the <c>default</c> user is used.</summary>
    public string? User { get; set; }

    public string? Password { get; set; }

    public int Database { get; set; }

    public bool Ssl { get; set; }

    /// <summary>Name expected on the server's certificate, when it differs from <see cref="Host"/>.</summary>
    public string? SslHost { get; set; }

    /// <summary>For private CAs and tests; by default the system's trust store decides.</summary>
    public RemoteCertificateValidationCallback? CertificateValidation { get; set; }

    /// <summary>Shown by <c>CLIENT LIST</c> on the server.</summary>
    public string? ClientName { get; set; }

    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>A command without a reply for this long breaks its connection (which is then re-established).</summary>
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>First pause between reconnect attempts; it doubles on each failure up to <see cref="MaxReconnectDelay"/>.</summary>
    public TimeSpan MinReconnectDelay { get; set; } = TimeSpan.FromMilliseconds(100);

    public TimeSpan MaxReconnectDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Parses a connection string. Unknown options are refused rather than silently ignored.</summary>
    /// <exception cref="FormatException">The string is malformed or names an option this client does not have.</exception>
    public static RedisConnectionOptions Parse(string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        var options = new RedisConnectionOptions();
        bool sawEndpoint = false;
        foreach (string rawPart in connectionString.Split(','))
        {
            string part = rawPart.Trim();
            if (part.Length == 0)
            {
                continue;
            }

            int equals = part.IndexOf('=', StringComparison.Ordinal);
            if (equals < 0)
            {
                if (sawEndpoint)
                {
                    throw new FormatException("Only one Redis endpoint is supported (no cluster or sentinel).");
                }

                options.SetEndpoint(part);
                sawEndpoint = true;
                continue;
            }

            string key = part[..equals].Trim();
            string value = part[(equals + 1)..].Trim();
            switch (key.ToLowerInvariant())
            {
                case "password": options.Password = value; break;
                case "user": options.User = value; break;
                case "ssl": options.Ssl = ParseBool(key, value); break;
                case "sslhost": options.SslHost = value; break;
                case "defaultdatabase": options.Database = ParseInt(key, value, 0); break;
                case "name": options.ClientName = value; break;
                case "connecttimeout": options.ConnectTimeout = TimeSpan.FromMilliseconds(ParseInt(key, value, 1)); break;
                case "commandtimeout" or "synctimeout" or "asynctimeout": options.CommandTimeout = TimeSpan.FromMilliseconds(ParseInt(key, value, 1)); break;
                // Accepted for compatibility with connection strings written for other clients; this client never
                // aborts on a failed first connect (it keeps retrying) and has no admin-command guard.
                case "abortconnect" or "allowadmin": ParseBool(key, value); break;
                default: throw new FormatException($"Unknown Redis connection option '{key}'.");
            }
        }

        if (!sawEndpoint)
        {
            throw new FormatException("The Redis connection string names no host:port.");
        }

        return options;
    }

    /// <summary>The endpoint and options, with the password masked: safe to log.</summary>
    public override string ToString() =>
        $"{(Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]" : Host)}:{Port}" +
        $"{(User is null ? "" : $",user={User}")}{(Password is null ? "" : ",password=*****")}" +
        $"{(Ssl ? ",ssl=true" : "")}{(Database == 0 ? "" : $",defaultDatabase={Database}")}";

    private void SetEndpoint(string endpoint)
    {
        string host = endpoint;
        string? port = null;
        if (endpoint.StartsWith('['))
        {
            int close = endpoint.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                throw new FormatException($"Malformed IPv6 endpoint '{endpoint}'.");
            }

            host = endpoint[1..close];
            if (close + 1 < endpoint.Length)
            {
                port = endpoint[(close + 1)..].StartsWith(':') ? endpoint[(close + 2)..] : throw new FormatException($"Malformed endpoint '{endpoint}'.");
            }
        }
        else
        {
            int colon = endpoint.LastIndexOf(':');
            if (colon >= 0)
            {
                host = endpoint[..colon];
                port = endpoint[(colon + 1)..];
            }
        }

        if (host.Length == 0)
        {
            throw new FormatException($"Malformed endpoint '{endpoint}'.");
        }

        Host = host;
        Port = port is null ? DefaultPort : ParseInt("port", port, 1, 65535);
    }

    private static bool ParseBool(string key, string value) =>
        bool.TryParse(value, out bool result) ? result : throw new FormatException($"Redis option '{key}' must be true or false.");

    private static int ParseInt(string key, string value, int min, int max = int.MaxValue) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int result) && result >= min && result <= max
            ? result
            : throw new FormatException($"Redis option '{key}' must be a number from {min} to {max}.");
}
