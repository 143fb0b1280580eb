namespace Memo.Ingest.Configuration;

/// <summary>
/// Configuration section <c>Memo:Outbox</c>: replies sent to the WhatsApp Cloud API through the durable outbox
/// (docs/DECISIONS.md, "The outbox"; docs/OPERATIONS.md lists every setting).
/// </summary>
public sealed class OutboxOptions
{
    public const string Section = "Memo:Outbox";

    /// <summary>The Graph API's base address; tests point it at a fake.</summary>
    public string GraphBaseUrl { get; set; } = "https://graph.facebook.com";

    public string ApiVersion { get; set; } = "v23.0";

    /// <summary>A system-user token used for every account that has none of its own in <see cref="Accounts"/>.</summary>
    public string? AccessToken { get; set; }

    /// <summary>Per phone_number_id: its own access token and limits.</summary>
    public Dictionary<string, OutboxAccountOptions> Accounts { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Meta's default throughput per business number.</summary>
    public double MessagesPerSecond { get; set; } = 80;

    /// <summary>The fixed throughput of a coexistence number (Business app + Cloud API): an account that has received
    /// a history sync, or is marked <see cref="OutboxAccountOptions.Coexistence"/>.</summary>
    public double CoexistenceMessagesPerSecond { get; set; } = 20;

    /// <summary>The pair rate: one message to the same user every this many seconds on average (Meta: about 6; more
    /// gets error 131056).</summary>
    public double PairIntervalSeconds { get; set; } = 6;

    /// <summary>Messages to one user that may go at once before the pair rate applies (Meta allows bursts, and makes
    /// the sender wait for them afterwards).</summary>
    public int PairBurst { get; set; } = 5;

    /// <summary>How long a send may wait for Meta's answer; past it, the attempt counts as a timeout.</summary>
    public double RequestTimeoutSeconds { get; set; } = 20;

    /// <summary>Retries stop this long after the first attempt; the row is then failed with the last error.</summary>
    public double RetryHorizonSeconds { get; set; } = 3600;

    /// <summary>The first retry's delay; each further retry doubles it (up to <see cref="MaxRetryDelaySeconds"/>),
    /// with full jitter.</summary>
    public double RetryBaseDelaySeconds { get; set; } = 1;

    public double MaxRetryDelaySeconds { get; set; } = 300;

    /// <summary>A timeout leaves it open whether Meta took the message. true (the default): retry it, accepting that
    /// the user may get it twice; false: the row becomes <c>unknown</c>, like a send cut off by a crash.</summary>
    public bool RetryTimeouts { get; set; } = true;

    /// <summary>Rows left <c>unknown</c> (the gateway stopped mid-send) are sent again once no status webhook has
    /// settled them for this long. Off (null) by default: a second message is worse than a missing one for most
    /// businesses; an operator who prefers the opposite sets it.</summary>
    public double? ResendUnknownAfterSeconds { get; set; }

    /// <summary>Sends in flight at once on this instance, over all accounts. Meta answers in 100-300 ms, so one number
    /// at its 80 messages/s keeps about 20 in flight; the default covers a dozen numbers at full speed.</summary>
    public int MaxConcurrentSends { get; set; } = 256;

    /// <summary>How often an idle sender looks for due rows (a reply posted on this instance wakes it at once).</summary>
    public int PollMilliseconds { get; set; } = 200;

    /// <summary>false: this instance sends nothing (replies are still accepted into the outbox).</summary>
    public bool Enabled { get; set; } = true;

    public string? AccessTokenFor(string account) =>
        Accounts.TryGetValue(account, out OutboxAccountOptions? options) && !string.IsNullOrEmpty(options.AccessToken)
            ? options.AccessToken
            : string.IsNullOrEmpty(AccessToken) ? null : AccessToken;
}

/// <summary>One account's entry in <see cref="OutboxOptions.Accounts"/>.</summary>
public sealed class OutboxAccountOptions
{
    public string? AccessToken { get; set; }

    /// <summary>Overrides the throughput (for a number Meta has upgraded, for instance).</summary>
    public double? MessagesPerSecond { get; set; }

    /// <summary>A coexistence number (20 messages/s), known before its history sync arrives.</summary>
    public bool Coexistence { get; set; }
}
