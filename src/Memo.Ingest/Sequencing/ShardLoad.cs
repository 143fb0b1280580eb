using System.Diagnostics;

namespace Memo.Ingest.Sequencing;

/// <summary>
/// How busy each shard held by one sequencer session is: the events its rounds assigned, as events per second smoothed
/// over a few seconds; and how far behind the session is: the records its live rounds took on average, smoothed the
/// same way (a session that keeps up takes what arrived since its last round, a few records; one that cannot takes
/// thousands). The session reports both at every rebalance, and the leader's <see cref="ShardAssignment"/> decides by
/// them. Used by the session's own task only.
/// </summary>
internal sealed class ShardLoad
{
    // A change of load shows in the rates within a few seconds (63 % of it after this long): quick enough to spread a
    // burst that lasts seconds, slow enough that a single large webhook does not move shards.
    private const double TimeConstantSeconds = 3;

    private readonly long[] _events = new long[SequencerSql.ShardCount];
    private readonly double[] _rates = new double[SequencerSql.ShardCount];
    private long _since = Stopwatch.GetTimestamp();
    private long _roundRecords;
    private long _rounds;
    private double _recordsPerRound;

    /// <summary>The records a live round took on average, smoothed (as of the last <see cref="Rates"/>).</summary>
    public double RecordsPerRound => _recordsPerRound;

    /// <summary>A live round took <paramref name="records"/> records (rounds that found none are not counted).</summary>
    public void Round(int records)
    {
        _roundRecords += records;
        _rounds++;
    }

    /// <summary>An event of <paramref name="shard"/> was assigned.</summary>
    public void Count(int shard)
    {
        if ((uint)shard < (uint)_events.Length)
        {
            _events[shard]++;
        }
    }

    /// <summary>A shard this session takes over goes on from the rate its former owner reported, so that it does not
    /// look idle (and get moved again) while its own count builds up.</summary>
    public void Seed(int shard, double eventsPerSecond)
    {
        if ((uint)shard < (uint)_rates.Length)
        {
            _rates[shard] = eventsPerSecond;
        }
    }

    /// <summary>Folds the events and rounds counted since the last call into the rates and <see cref="RecordsPerRound"/>,
    /// and returns the rates of <paramref name="shards"/>.</summary>
    public float[] Rates(int[] shards)
    {
        long now = Stopwatch.GetTimestamp();
        double seconds = Stopwatch.GetElapsedTime(_since, now).TotalSeconds;
        _since = now;
        double weight = seconds > 0 ? 1 - Math.Exp(-seconds / TimeConstantSeconds) : 0;
        double recordsPerRound = _rounds > 0 ? (double)_roundRecords / _rounds : 0;
        _recordsPerRound += (recordsPerRound - _recordsPerRound) * weight;
        _roundRecords = 0;
        _rounds = 0;
        for (int shard = 0; shard < _rates.Length; shard++)
        {
            if (seconds > 0)
            {
                _rates[shard] += ((_events[shard] / seconds) - _rates[shard]) * weight;
            }

            _events[shard] = 0;
        }

        return Array.ConvertAll(shards, shard => (float)_rates[shard]);
    }
}
