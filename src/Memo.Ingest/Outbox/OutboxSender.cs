using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using Memo.Ingest.Configuration;
using Memo.Ingest.Observability;
using Memo.Ingest.Storage;
using Memo.Ingest.Testing;
using Memo.Ingest.Webhooks.Parsing;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Memo.Ingest.Outbox;

/// <summary>
/// Drains the outbox to the Cloud API (docs/DECISIONS.md, "The outbox").
/// <list type="bullet">
/// <item>An account is sent for by one instance at a time: the holder of its lease, a session advisory lock on this
/// sender's own connection (PostgreSQL releases it when the holder dies), so Meta's per-number limits are kept by one
/// <see cref="SendPacer{TKey}"/>, not shared by guesswork.</item>
/// <item>A reply is marked <c>sending</c> in a committed transaction before it is sent. A crash from then until its
/// answer is committed leaves it <c>sending</c>; the next holder of the lease turns it <c>unknown</c> and never sends
/// it again on its own (unless <see cref="OutboxOptions.ResendUnknownAfterSeconds"/> says so). Meta's status webhooks
/// still settle it: they carry the row's key (biz_opaque_callback_data).</item>
/// <item>Replies are claimed only when their slot under the limits is at most <see cref="ClaimHorizon"/> away, so
/// that a reply held back by the pair rate waits <c>queued</c> (in the database, deferred to its slot), not claimed.</item>
/// </list>
/// </summary>
internal sealed partial class OutboxSender : BackgroundService
{
    // "MEM3" in ASCII: the lease key space (the second key is hashtext(account); two accounts that share a hash share
    // a holder, which only means one instance sends for both).
    private const string LeaseSpace = "1296387379";
    private static readonly TimeSpan ClaimHorizon = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MaintenanceInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan IdleLease = TimeSpan.FromSeconds(10);

    // Replies read per account and pass: more than its throughput lets go within the horizon (8 at 80/s), so that
    // replies held back by the pair rate do not hide the ones behind them.
    private const int DuePerAccount = 32;

    // Passes are at least this far apart: every reply queued wakes the sender, and at hundreds of replies per second
    // a pass per wake-up would cost more queries than the replies themselves.
    private static readonly TimeSpan MinPassInterval = TimeSpan.FromMilliseconds(10);

    private readonly NpgsqlDataSource _dataSource;
    private readonly WriterDataSource _leaseSource;
    private readonly DatabaseState _database;
    private readonly OutboxOptions _options;
    private readonly OutboxMetrics _metrics;
    private readonly GraphApiClient _graph;
    private readonly OutboxWakeup _wakeup;
    private readonly FaultInjector _faults;
    private readonly ILogger _logger;
    private readonly Channel<bool> _wakeups = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    // The pacers are used by the loop and by sends that learn of a limit from Meta: under _pace.
    private readonly Lock _pace = new();
    private readonly SendPacer<string> _accountPacer = new();
    private readonly SendPacer<(string Account, string Recipient)> _pairPacer = new();

    // The same limits applied again when a send actually starts: a send whose delay timer fired late must not leave its
    // successor less than an interval behind it.
    private readonly SendPacer<string> _accountGate = new();
    private readonly SendPacer<(string Account, string Recipient)> _pairGate = new();
    private readonly long _pairInterval;

    // Sends under way on this instance, by outbox id; only the loop adds, sends remove themselves.
    private readonly ConcurrentDictionary<long, (string Account, Task Send)> _inFlight = new();

    // Loop only: accounts whose lease this instance holds, when each last had work, and their throughput interval.
    private readonly Dictionary<string, long> _leases = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _accountIntervals = new(StringComparer.Ordinal);
    private long _nextMaintenance;

    public OutboxSender(NpgsqlDataSource dataSource, WriterDataSource leaseSource, DatabaseState database, IOptions<OutboxOptions> options, OutboxMetrics metrics,
        OutboxWakeup wakeup, FaultInjector faults, ILogger<OutboxSender> logger)
    {
        _dataSource = dataSource;
        _leaseSource = leaseSource;
        _database = database;
        _options = options.Value;
        _metrics = metrics;
        _wakeup = wakeup;
        _faults = faults;
        _logger = logger;
        _graph = new GraphApiClient(_options);
        _pairInterval = Ticks(TimeSpan.FromSeconds(Math.Max(0, _options.PairIntervalSeconds)));
        wakeup.Register(() => _wakeups.Writer.TryWrite(true));
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_options.Enabled)
        {
            return;
        }

        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (_database.SchemaReady)
                {
                    await RunSessionAsync(stoppingToken);
                }
                else
                {
                    await Task.Delay(_options.PollMilliseconds, stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                // The lease connection is gone, and every lease with it: another instance may take the accounts now.
                // Any other failure is treated the same way: the sender restarts rather than stopping the gateway.
                Log.SessionFailed(_logger, e);
                _leases.Clear();
                await Task.Delay(TimeSpan.FromSeconds(1), CancellationToken.None);
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        // Sends already handed to Meta finish and their answers are committed (each is bounded by the request timeout).
        await Task.WhenAll(_inFlight.Values.Select(static f => f.Send)).WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    public override void Dispose()
    {
        _graph.Dispose();
        base.Dispose();
    }

    private async Task RunSessionAsync(CancellationToken stopping)
    {
        // The session that holds the leases lives as long as they do: it comes from the write pool, which keeps a
        // connection for it, so that a read pool drained by clients can never stop replies (outcomes, which are short,
        // are committed through the read pool).
        await using NpgsqlConnection connection = await _leaseSource.OpenConnectionAsync(stopping);
        _leases.Clear();
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                long started = Stopwatch.GetTimestamp();
                bool more = await RoundAsync(connection, stopping);
                await WaitAsync(more ? ClaimHorizon / 2 : TimeSpan.FromMilliseconds(_options.PollMilliseconds), stopping);
                TimeSpan rest = MinPassInterval - Stopwatch.GetElapsedTime(started);
                if (rest > TimeSpan.Zero)
                {
                    await Task.Delay(rest, stopping);
                }
            }
        }
        finally
        {
            // The connection goes back to the pool: it must not keep the leases (a broken one has lost them anyway).
            if (connection.State == System.Data.ConnectionState.Open)
            {
                try
                {
                    await using var unlock = new NpgsqlCommand("SELECT pg_advisory_unlock_all()", connection);
                    await unlock.ExecuteNonQueryAsync(CancellationToken.None);
                }
                catch (NpgsqlException)
                {
                    // Broken after all: PostgreSQL has released them with the session.
                }
            }
        }
    }

    private async Task WaitAsync(TimeSpan wait, CancellationToken stopping)
    {
        if (_wakeups.Reader.TryRead(out _))
        {
            return;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        timeout.CancelAfter(wait);
        try
        {
            await _wakeups.Reader.WaitToReadAsync(timeout.Token);
            _wakeups.Reader.TryRead(out _);
        }
        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// One pass: the due replies of every account (one query), leases for accounts not yet held here, a slot for each
    /// reply under its account's throughput and its recipient's pair rate, then one claim for all replies whose slot is
    /// within the horizon (and one deferral for those the pair rate holds back).
    /// </summary>
    /// <returns>Whether some account has more due now than its limits let go in this pass.</returns>
    private async Task<bool> RoundAsync(NpgsqlConnection connection, CancellationToken stopping)
    {
        long now = Stopwatch.GetTimestamp();
        if (now >= _nextMaintenance)
        {
            await MaintainAsync(connection, now);
            _nextMaintenance = now + Ticks(MaintenanceInterval);
        }

        int free = _options.MaxConcurrentSends - _inFlight.Count;
        if (free <= 0)
        {
            return false;
        }

        var due = new List<(string Account, long Id, string Recipient)>();
        await using (var command = new NpgsqlCommand(OutboxSql.Due, connection))
        {
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = DuePerAccount });
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(stopping);
            while (await reader.ReadAsync(stopping))
            {
                due.Add((reader.GetString(0), reader.GetInt64(1), reader.GetString(2)));
            }
        }

        var leased = new HashSet<string>(StringComparer.Ordinal);
        foreach (string account in due.Select(static d => d.Account).Distinct())
        {
            if (_leases.ContainsKey(account) || await TryLeaseAsync(connection, account))
            {
                _leases[account] = now;
                leased.Add(account);
            }
        }

        (Dictionary<long, (long Slot, long Interval)> slots, List<(long Id, double Seconds)> deferred, bool more) =
            Plan(due.Where(d => leased.Contains(d.Account)), free);
        if (deferred.Count > 0)
        {
            await DeferAsync(connection, deferred);
        }

        if (slots.Count > 0)
        {
            await ClaimAndSendAsync(connection, slots);
        }

        return more;
    }

    /// <summary>
    /// Gives each due reply a slot under its account's throughput and its recipient's pair rate, in queue order per
    /// account: those whose slot is within the horizon are to be claimed now; those the pair rate holds back longer are
    /// deferred to their slot; an account whose throughput is used up for the horizon waits for the next pass.
    /// </summary>
    private (Dictionary<long, (long Slot, long Interval)> Slots, List<(long Id, double Seconds)> Deferred, bool More) Plan(
        IEnumerable<(string Account, long Id, string Recipient)> due, int free)
    {
        var slots = new Dictionary<long, (long, long)>();
        var deferred = new List<(long, double)>();
        bool more = false;
        long now = Stopwatch.GetTimestamp();
        long horizon = now + Ticks(ClaimHorizon);
        string? full = null;
        lock (_pace)
        {
            foreach ((string account, long id, string recipient) in due)
            {
                if (account == full)
                {
                    continue;
                }

                if (slots.Count >= free)
                {
                    more = true;
                    break;
                }

                long interval = _accountIntervals[account];
                (string, string) pair = PairOf(account, recipient);
                long pairSlot = _pairPacer.EarliestSlot(pair, now, _pairInterval, _options.PairBurst);
                if (pairSlot > horizon)
                {
                    deferred.Add((id, (double)(pairSlot - now) / Stopwatch.Frequency));
                    continue;
                }

                long accountSlot = _accountPacer.EarliestSlot(account, now, interval, 1);
                if (accountSlot > horizon)
                {
                    // This account's throughput is used up for the horizon; the rest of its replies wait for a later pass.
                    full = account;
                    more = true;
                    _metrics.Throttled("account");
                    continue;
                }

                long slot = Math.Max(pairSlot, accountSlot);
                _pairPacer.Book(pair, slot, _pairInterval);
                _accountPacer.Book(account, slot, interval);
                slots[id] = (slot, interval);
            }
        }

        return (slots, deferred, more);
    }

    private static async Task<List<string>> ReadAccountsAsync(NpgsqlConnection connection, string sql)
    {
        var accounts = new List<string>();
        await using var command = new NpgsqlCommand(sql, connection);
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            accounts.Add(reader.GetString(0));
        }

        return accounts;
    }

    /// <summary>
    /// Takes the account's lease if no other instance holds it. Replies it finds <c>sending</c> that are not under way
    /// here were cut off by the lease's previous holder: they become <c>unknown</c>.
    /// </summary>
    private async Task<bool> TryLeaseAsync(NpgsqlConnection connection, string account)
    {
        await using (var command = new NpgsqlCommand($"SELECT pg_try_advisory_lock({LeaseSpace}, hashtext($1))", connection))
        {
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = account });
            if (await command.ExecuteScalarAsync() is not true)
            {
                return false;
            }
        }

        long[] mine = [.. _inFlight.Where(e => e.Value.Account == account).Select(static e => e.Key)];
        await using (var command = new NpgsqlCommand(OutboxSql.Orphans, connection))
        {
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = account });
            command.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = mine });
            int orphans = await command.ExecuteNonQueryAsync();
            if (orphans > 0)
            {
                Log.Orphaned(_logger, orphans, account);
                _wakeup.WakeSequencer();
            }
        }

        await using (var command = new NpgsqlCommand(OutboxSql.IsCoexistence, connection))
        {
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = account });
            bool coexistence = await command.ExecuteScalarAsync() is true;
            _accountIntervals[account] = Ticks(TimeSpan.FromSeconds(1 / Math.Max(0.001, RateOf(account, coexistence))));
        }

        return true;
    }

    private double RateOf(string account, bool coexistence)
    {
        _options.Accounts.TryGetValue(account, out OutboxAccountOptions? own);
        return own?.MessagesPerSecond
            ?? (coexistence || own?.Coexistence == true ? _options.CoexistenceMessagesPerSecond : _options.MessagesPerSecond);
    }

    /// <summary>
    /// Marks the planned replies sending (one statement) and, once that is committed, starts their sends. Not before:
    /// PostgreSQL sends rows as its output buffer fills, ahead of the commit, and an answer recorded before the claim
    /// committed would find the row still 'queued', change nothing, and leave it 'sending' for good (its next lease
    /// holder then declares it 'unknown').
    /// </summary>
    private async Task ClaimAndSendAsync(NpgsqlConnection connection, Dictionary<long, (long Slot, long Interval)> slots)
    {
        var claims = new List<Claim>(slots.Count);
        await using (var command = new NpgsqlCommand(OutboxSql.Claim, connection))
        {
            command.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = [.. slots.Keys] });
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                (long slot, long interval) = slots[reader.GetInt64(0)];
                claims.Add(new Claim(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetFieldValue<byte[]>(3),
                    reader.GetInt32(4), reader.GetDouble(5), slot, interval));
            }

            // Reading to the end consumes ReadyForQuery: only then is the statement's implicit transaction committed.
            await reader.NextResultAsync();
        }

        bool announced = false;
        foreach (Claim claim in claims)
        {
            announced |= claim.Attempts == 1;
            // Registered before it starts, so that its own removal (when it ends) always comes after.
            var send = new Task<Task>(() => SendAsync(claim));
            _inFlight[claim.Id] = (claim.Account, send.Unwrap());
            send.Start(TaskScheduler.Default);
        }

        if (announced)
        {
            _wakeup.WakeSequencer();
        }
    }

    private async Task DeferAsync(NpgsqlConnection connection, List<(long Id, double Seconds)> deferred)
    {
        foreach ((long _, double _) in deferred)
        {
            _metrics.Throttled("pair");
        }

        await using var command = new NpgsqlCommand(OutboxSql.Defer, connection);
        command.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = [.. deferred.Select(static d => d.Id)] });
        command.Parameters.Add(new NpgsqlParameter<double[]> { TypedValue = [.. deferred.Select(static d => d.Seconds)] });
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>Sends one claimed reply at its slot and commits what Meta answered.</summary>
    private async Task SendAsync(Claim claim)
    {
        try
        {
            await WaitForSlotAsync(claim);

            await _faults.HangIfArmedAsync(FaultInjector.OutboxBeforeSend, CancellationToken.None);
            SendOutcome outcome;
            long started = Stopwatch.GetTimestamp();
            if (_options.AccessTokenFor(claim.Account) is not { } token)
            {
                outcome = new SendOutcome(SendOutcomeKind.Failed, ErrorCode: 0, Error: """{"code":0,"message":"No access token is configured for this account (Memo:Outbox)."}"""u8.ToArray());
            }
            else
            {
                var body = new ArrayBufferWriter<byte>(claim.Request.Length + 64);
                OutboxRequest.WriteSendBody(claim.Request, OutboxMessageKey.For(claim.Id), body);
                outcome = await _graph.SendAsync(claim.Account, token, body.WrittenMemory, CancellationToken.None);
            }

            _metrics.Sent(outcome, Stopwatch.GetElapsedTime(started));
            await _faults.HangIfArmedAsync(FaultInjector.OutboxBeforeCommit, CancellationToken.None);
            await RecordAsync(claim, outcome);
        }
        catch (Exception e)
        {
            // Left "sending": the next holder of the lease makes it unknown. Never retried from here, as it may be sent.
            Log.SendFailed(_logger, claim.Id, e);
        }
        finally
        {
            _inFlight.TryRemove(claim.Id, out _);
            _wakeups.Writer.TryWrite(true);
        }
    }

    /// <summary>
    /// Waits for the slot the reply was given, then until the account and the pair allow a send now, measured from the
    /// sends that actually started (timers fire late, and unevenly).
    /// </summary>
    private async Task WaitForSlotAsync(Claim claim)
    {
        (string, string) pair = PairOf(claim.Account, claim.Recipient);
        long wait = claim.Slot - Stopwatch.GetTimestamp();
        while (true)
        {
            if (wait > 0)
            {
                await Task.Delay(TimeSpan.FromSeconds((double)wait / Stopwatch.Frequency));
            }

            lock (_pace)
            {
                long now = Stopwatch.GetTimestamp();
                long slot = Math.Max(_accountGate.EarliestSlot(claim.Account, now, claim.Interval, 1),
                    _pairGate.EarliestSlot(pair, now, _pairInterval, _options.PairBurst));
                if (slot <= now)
                {
                    _accountGate.Book(claim.Account, now, claim.Interval);
                    _pairGate.Book(pair, now, _pairInterval);
                    return;
                }

                wait = slot - now;
            }
        }
    }

    /// <summary>Commits the outcome; while PostgreSQL is away, tries again (the answer exists only in this process).</summary>
    private async Task RecordAsync(Claim claim, SendOutcome outcome)
    {
        (string sql, Action<NpgsqlParameterCollection> bind, bool announce) = Plan(claim, outcome);
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                await using NpgsqlCommand command = _dataSource.CreateCommand(sql);
                bind(command.Parameters);
                await command.ExecuteNonQueryAsync();
                if (announce)
                {
                    _wakeup.WakeSequencer();
                }

                return;
            }
            catch (NpgsqlException) when (attempt < 600)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(500));
            }
        }
    }

    private (string Sql, Action<NpgsqlParameterCollection> Bind, bool Announce) Plan(Claim claim, SendOutcome outcome)
    {
        switch (outcome.Kind)
        {
            case SendOutcomeKind.Accepted:
                return (OutboxSql.Accepted, p =>
                {
                    p.Add(new NpgsqlParameter<long> { TypedValue = claim.Id });
                    p.Add(new NpgsqlParameter<string?> { TypedValue = outcome.Wamid, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
                    p.Add(new NpgsqlParameter<byte[]?> { TypedValue = outcome.Response, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Bytea });
                }, true);
            case SendOutcomeKind.Failed:
                return Fail(claim, outcome.ErrorCode, outcome.Error);
            case SendOutcomeKind.Timeout when !_options.RetryTimeouts:
                return (OutboxSql.MarkUnknown, p => p.Add(new NpgsqlParameter<long> { TypedValue = claim.Id }), true);
        }

        // Retry, throttled, or a timeout that may be retried: back off, unless the horizon is passed.
        double delay = outcome.Kind == SendOutcomeKind.ThrottledPair
            ? Math.Min(_options.MaxRetryDelaySeconds, Math.Pow(4, claim.Attempts - 1))
            : Backoff(claim.Attempts);
        long until = Stopwatch.GetTimestamp() + Ticks(TimeSpan.FromSeconds(delay));
        lock (_pace)
        {
            if (outcome.Kind == SendOutcomeKind.ThrottledAccount)
            {
                _accountPacer.Hold(claim.Account, until, 1, 1);
            }
            else if (outcome.Kind == SendOutcomeKind.ThrottledPair)
            {
                _pairPacer.Hold(PairOf(claim.Account, claim.Recipient), until, _pairInterval, _options.PairBurst);
            }
        }

        if (outcome.Kind is SendOutcomeKind.ThrottledAccount or SendOutcomeKind.ThrottledPair)
        {
            _metrics.Throttled(outcome.Kind == SendOutcomeKind.ThrottledAccount ? "meta_account" : "meta_pair");
        }

        byte[] error = outcome.Error ?? """{"code":-1,"message":"No answer from the Graph API in time."}"""u8.ToArray();
        if (claim.SecondsSinceFirstAttempt + delay > _options.RetryHorizonSeconds)
        {
            return Fail(claim, outcome.ErrorCode ?? -1, error);
        }

        return (OutboxSql.Retry, p =>
        {
            p.Add(new NpgsqlParameter<long> { TypedValue = claim.Id });
            p.Add(new NpgsqlParameter<double> { TypedValue = delay });
            p.Add(new NpgsqlParameter<int?> { TypedValue = outcome.ErrorCode ?? -1, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Integer });
            p.Add(new NpgsqlParameter<byte[]> { TypedValue = error });
        }, false);
    }

    private static (string, Action<NpgsqlParameterCollection>, bool) Fail(Claim claim, int? code, byte[]? error) =>
        (OutboxSql.Failed, p =>
        {
            p.Add(new NpgsqlParameter<long> { TypedValue = claim.Id });
            p.Add(new NpgsqlParameter<int?> { TypedValue = code, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Integer });
            p.Add(new NpgsqlParameter<byte[]> { TypedValue = error ?? """{"message":"failed"}"""u8.ToArray() });
        }, true);

    /// <summary>Exponential backoff from the base delay, capped, with jitter over its upper half (never zero).</summary>
    private double Backoff(int attempts)
    {
        double ceiling = Math.Min(_options.MaxRetryDelaySeconds, _options.RetryBaseDelaySeconds * Math.Pow(2, Math.Min(30, attempts - 1)));
        return (ceiling / 2) + (Random.Shared.NextDouble() * ceiling / 2);
    }

    /// <summary>
    /// Every second: replies cut off by a dead instance become unknown, unknown rows settled by status webhooks become accepted (or, with a resend policy, are queued
    /// again), the depth and age metrics are refreshed, idle leases are given back and caught-up pacer keys dropped.
    /// </summary>
    private async Task MaintainAsync(NpgsqlConnection connection, long now)
    {
        // Replies left sending by an instance that died: their account's lease is free, and taking it settles them.
        List<string> sending = await ReadAccountsAsync(connection, OutboxSql.SendingAccounts);
        foreach (string account in sending)
        {
            if (!_leases.ContainsKey(account) && await TryLeaseAsync(connection, account))
            {
                _leases[account] = now;
            }
        }

        await using (var command = new NpgsqlCommand(OutboxSql.Reconcile, connection))
        {
            command.Parameters.Add(new NpgsqlParameter<double?> { TypedValue = _options.ResendUnknownAfterSeconds, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Double });
            await command.ExecuteNonQueryAsync();
        }

        await using (var command = new NpgsqlCommand(OutboxSql.Depth, connection))
        await using (NpgsqlDataReader reader = await command.ExecuteReaderAsync())
        {
            if (await reader.ReadAsync())
            {
                _metrics.Depth(reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetDouble(3));
            }
        }

        foreach ((string account, long active) in _leases.ToArray())
        {
            if (now - active > Ticks(IdleLease) && !_inFlight.Values.Any(f => f.Account == account))
            {
                await using var command = new NpgsqlCommand($"SELECT pg_advisory_unlock({LeaseSpace}, hashtext($1))", connection);
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = account });
                await command.ExecuteNonQueryAsync();
                _leases.Remove(account);
            }
        }

        lock (_pace)
        {
            _accountPacer.Trim(now);
            _pairPacer.Trim(now);
            _accountGate.Trim(now);
            _pairGate.Trim(now);
        }
    }

    /// <summary>The pair rate's key: the business number and the user, whatever form the client wrote the number in.</summary>
    private static (string Account, string Recipient) PairOf(string account, string recipient) =>
        (account, PhoneNumbers.Normalise(recipient) ?? recipient);

    private static long Ticks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);

    /// <summary>A reply this instance marked sending: what the send and its outcome need.</summary>
    private sealed record Claim(long Id, string Account, string Recipient, byte[] Request, int Attempts, double SecondsSinceFirstAttempt, long Slot,
        long Interval);

    private static partial class Log
    {
        [LoggerMessage(EventId = 80, Level = LogLevel.Warning, Message = "The outbox sender lost its database session; its leases are released.")]
        public static partial void SessionFailed(ILogger logger, Exception exception);

        [LoggerMessage(EventId = 81, Level = LogLevel.Warning,
            Message = "{Count} replies of account {Account} were cut off mid-send by a stopped instance; they are now 'unknown' and will not be sent again on their own.")]
        public static partial void Orphaned(ILogger logger, int count, string account);

        [LoggerMessage(EventId = 82, Level = LogLevel.Error, Message = "Reply {Id} could not be sent or its outcome not stored; it stays 'sending' until its lease changes hands.")]
        public static partial void SendFailed(ILogger logger, long id, Exception exception);
    }
}
