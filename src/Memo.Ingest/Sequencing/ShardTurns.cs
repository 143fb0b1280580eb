namespace Memo.Ingest.Sequencing;

/// <summary>
/// Keeps a sequencer session's two lanes off each other's shards. The live lane (<see cref="SequencerLoop"/>) and the
/// history lane (<see cref="HistoryLane"/>) run their statements at the same time on two connections, so that a live
/// record never waits for a slice of a backfill; but an account's seqs must be assigned by one statement at a time, each
/// starting after the previous one committed (its snapshot then sees the account's last seq and stored rows). So the
/// history lane claims one shard per slice: it waits for a live statement that may hold that shard to finish, and live
/// statements leave the claimed shard out until the slice has been committed and announced.
///
/// Also the session's shards, so that one held by a slice is never given up under it: the live lane gives shards up
/// (<see cref="GiveUpAsync"/>) only once no slice holds them, and a claim on a shard this session no longer owns is
/// refused. Between instances the history statement checks in PostgreSQL itself that the live session still holds the
/// shard (<see cref="SequencerSql.HistoryDrain"/>).
/// </summary>
internal sealed class ShardTurns
{
    private readonly Lock _gate = new();
    private int[] _owned = [];
    private int _livePid;
    // The shards of the live statement in flight (null between statements), and what the next one may take: the owned
    // shards without the claimed one, made again only when either changes.
    private int[]? _liveInFlight;
    private int[] _liveShards = [];
    private int _claimed = -1;
    private int _waitingClaim = -1;
    private TaskCompletionSource<bool>? _claimWaiter;
    private TaskCompletionSource? _releaseWaiter;

    /// <summary>The shards this session holds (a gauge reads it from any thread).</summary>
    public int[] Owned => Volatile.Read(ref _owned);

    /// <summary>The backend pid of the live session that holds the shard locks; 0 while there is none.</summary>
    public int LivePid => Volatile.Read(ref _livePid);

    /// <summary>The live session connected (<paramref name="pid"/>) or lost its connection (0), and with it its shards.</summary>
    public void SessionChanged(int pid)
    {
        lock (_gate)
        {
            Volatile.Write(ref _livePid, pid);
            SetOwnedLocked([]);
        }
    }

    /// <summary>The live lane took shards (after acquiring their locks).</summary>
    public void SetOwned(int[] owned)
    {
        lock (_gate)
        {
            SetOwnedLocked(owned);
        }
    }

    /// <summary>
    /// The live lane is about to give up <paramref name="release"/>: they leave the owned set at once (no new claim
    /// takes them), and this waits until a slice that holds one of them has been committed, so that the shard lock
    /// is never released while this session still writes the shard's accounts.
    /// </summary>
    public Task GiveUpAsync(int[] release)
    {
        lock (_gate)
        {
            SetOwnedLocked([.. _owned.Where(s => !release.Contains(s))]);
            if (_claimed < 0 || !release.Contains(_claimed))
            {
                return Task.CompletedTask;
            }

            _releaseWaiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _releaseWaiter.Task;
        }
    }

    /// <summary>A live statement starts: the shards it may take (owned, without the one a slice holds).</summary>
    public int[] BeginLive()
    {
        lock (_gate)
        {
            _liveInFlight = _liveShards;
            return _liveShards;
        }
    }

    /// <summary>The live statement committed and its events were announced; a waiting claim is granted now.</summary>
    public void EndLive()
    {
        TaskCompletionSource<bool>? granted = null;
        lock (_gate)
        {
            _liveInFlight = null;
            if (_claimWaiter is not null)
            {
                granted = _claimWaiter;
                _claimWaiter = null;
                GrantLocked(_waitingClaim);
            }
        }

        granted?.TrySetResult(true);
    }

    /// <summary>
    /// The history lane wants <paramref name="shard"/> for one slice. Completes with false when this session does not
    /// own it (any more); with true once no live statement can be writing it, until <see cref="Release"/>.
    /// </summary>
    public Task<bool> ClaimAsync(int shard)
    {
        lock (_gate)
        {
            if (!_owned.Contains(shard))
            {
                return Task.FromResult(false);
            }

            if (_liveInFlight is null || !_liveInFlight.Contains(shard))
            {
                GrantLocked(shard);
                return Task.FromResult(true);
            }

            _waitingClaim = shard;
            _claimWaiter = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            return _claimWaiter.Task;
        }
    }

    /// <summary>The slice was committed and its events announced (or it failed): live statements take the shard again.</summary>
    public void Release()
    {
        TaskCompletionSource? waiter;
        lock (_gate)
        {
            _claimed = -1;
            _liveShards = _owned;
            waiter = _releaseWaiter;
            _releaseWaiter = null;
        }

        waiter?.TrySetResult();
    }

    private void GrantLocked(int shard)
    {
        _claimed = shard;
        _liveShards = [.. _owned.Where(s => s != shard)];
    }

    private void SetOwnedLocked(int[] owned)
    {
        Volatile.Write(ref _owned, owned);
        _liveShards = _claimed < 0 ? owned : [.. owned.Where(s => s != _claimed)];
        if (_claimWaiter is not null && !owned.Contains(_waitingClaim))
        {
            // The shard went away while the claim waited for a live statement: refuse it.
            TaskCompletionSource<bool> refused = _claimWaiter;
            _claimWaiter = null;
            refused.TrySetResult(false);
        }
    }
}
