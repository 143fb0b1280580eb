namespace Memo.Ingest.Redis;

/// <summary>What the gateway was doing with Redis when it failed (a metric label).</summary>
internal enum RedisOperation
{
    /// <summary>Asking which ids of a batch are already committed.</summary>
    Screen,

    /// <summary>Recording a committed batch's ids and publishing its events.</summary>
    RecordAndPublish,
}
